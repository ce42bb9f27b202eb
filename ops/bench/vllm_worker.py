"""vLLM's offline engine as a subprocess of the engine sweep (run in vLLM's own virtual environment).

vLLM's CPU build pins a transformers older than ours, so it lives in its own environment and this
script is the only code that runs there: it imports nothing from this repository. Protocol, one
JSON object per line: it prints ``{"ready": true}`` once the model is loaded, then answers each
``{"prompts": [[ids...], ...], "tokens": n}`` read from stdin with ``{"tokens": produced}``
(greedy, exactly ``n`` new tokens per prompt, end-of-sequence ignored).

Run by :mod:`ops.bench.engine_sweep` with ``--vllm-python /path/to/vllm-venv/bin/python``.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Loads the model given on the command line and serves generation requests over stdio."""
    model_dir, max_batch, max_len = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model_dir, max_num_seqs=max_batch, max_model_len=max_len, dtype="float32", seed=0)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        params = SamplingParams(max_tokens=request["tokens"], min_tokens=request["tokens"], ignore_eos=True,
                                temperature=0)
        prompts = [TokensPrompt(prompt_token_ids=p) for p in request["prompts"]]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        print(json.dumps({"tokens": sum(len(o.outputs[0].token_ids) for o in outputs)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
