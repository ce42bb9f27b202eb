"""Tests for the tiny offline Mistral checkpoint generator."""

from __future__ import annotations

import pathlib

import huggingface_hub.constants
import jinja2
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, MistralForCausalLM

from serve.tiny_model import make_tiny_model


def _go_offline(mp: pytest.MonkeyPatch) -> None:
    mp.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import time; patch the value it actually uses.
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prove the checkpoint needs no hub access; patched per test so no other test is affected.
    _go_offline(monkeypatch)


# Module-scoped fixtures cannot use the function-scoped monkeypatch; they patch by hand instead.
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp)
        return make_tiny_model(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


@pytest.fixture(scope="module")
def tokenizer(checkpoint: pathlib.Path):
    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp)
        return AutoTokenizer.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def model(checkpoint: pathlib.Path) -> MistralForCausalLM:
    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp)
        return AutoModelForCausalLM.from_pretrained(checkpoint).eval()


def _weights(path: pathlib.Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def test_architecture_is_mistral_with_gqa_and_sliding_window(checkpoint: pathlib.Path) -> None:
    config = AutoConfig.from_pretrained(checkpoint)
    assert config.model_type == "mistral"
    assert config.num_key_value_heads < config.num_attention_heads
    assert config.num_attention_heads % config.num_key_value_heads == 0
    assert config.sliding_window is not None
    assert config.sliding_window < config.max_position_embeddings
    assert config.rope_parameters["rope_theta"] == 1_000_000.0
    # Tied: the 32,768-row v3 vocabulary would otherwise be two thirds of the model.
    assert config.tie_word_embeddings is True
    assert config.vocab_size == 32768


def test_checkpoint_files_are_complete(checkpoint: pathlib.Path) -> None:
    names = {p.name for p in checkpoint.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "README.md"} <= names
    assert "random weights" in (checkpoint / "README.md").read_text().lower()
    # No staging or retired directories are left next to the checkpoint.
    assert [p.name for p in checkpoint.parent.iterdir()] == [checkpoint.name]


def test_loads_with_plain_from_pretrained(model, tokenizer, checkpoint: pathlib.Path) -> None:
    assert isinstance(model, MistralForCausalLM)
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.bos_token == "<s>"
    assert tokenizer.eos_token == "</s>"
    assert tokenizer.unk_token == "<unk>"
    assert tokenizer.pad_token == "<unk>"
    generation = model.generation_config
    assert model.config.bos_token_id == tokenizer.bos_token_id == generation.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id == generation.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.model_max_length == 2048


def test_special_token_ids_match_mistral(tokenizer) -> None:
    ids = tokenizer.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "[INST]", "[/INST]"])
    assert ids == [0, 1, 2, 3, 4]


def test_same_seed_gives_identical_weights(checkpoint: pathlib.Path, tmp_path: pathlib.Path):
    again = make_tiny_model(tmp_path / "again", seed=0)
    first, second = _weights(checkpoint), _weights(again)
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name
    assert (checkpoint / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_different_seed_gives_different_weights(checkpoint: pathlib.Path, tmp_path: pathlib.Path):
    other = _weights(make_tiny_model(tmp_path / "other", seed=1))
    first = _weights(checkpoint)
    assert not torch.equal(first["model.embed_tokens.weight"], other["model.embed_tokens.weight"])
    assert "lm_head.weight" not in first  # tied to the embedding


def test_build_leaves_global_rng_untouched(tmp_path: pathlib.Path) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    make_tiny_model(tmp_path / "rng", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_existing_checkpoint_is_reused_unless_overwrite(
    checkpoint: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    before = (checkpoint / "model.safetensors").stat().st_mtime_ns
    assert make_tiny_model(checkpoint, seed=99) == checkpoint
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == before

    target = tmp_path / "rebuilt"
    make_tiny_model(target, seed=0)
    make_tiny_model(target, seed=1, overwrite=True)
    assert "seed 1" in (target / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["rebuilt"]


def test_refuses_to_replace_unrelated_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_tiny_model(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_chat_template_renders_mistral_format(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    expected = "<s>[INST] You are terse.\n\nHi! [/INST]Hello.</s>[INST] What is 2+2? [/INST]"
    assert tokenizer.apply_chat_template(messages, tokenize=False) == expected
    # Mistral prompts already end at "[/INST]": a generation prompt adds nothing.
    with_prompt = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert with_prompt == expected

    encoded = tokenizer.apply_chat_template(messages, tokenize=True)
    ids = encoded["input_ids"]  # transformers 5 returns a BatchEncoding here.
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert ids[-1] == tokenizer.convert_tokens_to_ids("[/INST]")
    assert tokenizer.decode(ids) == expected


def test_chat_template_continues_final_assistant_message(tokenizer) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Once upon"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    assert rendered == "<s>[INST] Hi [/INST]Once upon"


def test_chat_template_joins_several_system_messages(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "A."},
        {"role": "system", "content": "B."},
        {"role": "user", "content": "Q"},
    ]
    expected = "<s>[INST] A.\n\nB.\n\nQ [/INST]"
    assert tokenizer.apply_chat_template(messages, tokenize=False) == expected


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [{"role": "assistant", "content": "a"}],
        [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}],
        [{"role": "system", "content": "only a system prompt"}],
        [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}],
    ],
)
def test_chat_template_rejects_invalid_conversations(tokenizer, messages) -> None:
    with pytest.raises(jinja2.TemplateError, match="alternate|at least one user|Only system"):
        tokenizer.apply_chat_template(messages, tokenize=False)


@pytest.mark.parametrize(
    "text",
    [
        "Héllo wörld 🚀 [INST]",
        "  leading spaces, trailing tabs\t\nand a new line  ",
        "日本語のテキスト, ελληνικά, नमस्ते, emoji 👩‍💻🧪",
        "def f(x):\n    return x ** 2  # ≥ 0\n",
    ],
)
def test_tokenizer_is_mistral_v3_and_decodes_like_mistral_common(tokenizer, checkpoint, text: str) -> None:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    v3 = MistralTokenizer.from_file(str(checkpoint / "tokenizer.model.v3")).instruct_tokenizer.tokenizer
    ids = v3.encode(text, bos=False, eos=False)
    assert tokenizer.unk_token_id not in ids  # byte fallback: any text is representable
    # The engine decodes with transformers' conversion; it must give mistral-common's text.
    assert tokenizer.decode(ids) == v3.decode(ids)
    assert v3.decode(ids).strip() == text.strip()


def test_control_tokens_in_text_are_single_ids(tokenizer) -> None:
    ids = tokenizer.encode("Héllo wörld 🚀 [INST]", add_special_tokens=False)
    assert ids[-1] == tokenizer.convert_tokens_to_ids("[INST]")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Héllo wörld 🚀 "


def test_plain_encoding_prepends_bos_only(tokenizer) -> None:
    ids = tokenizer("Hello world")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.eos_token_id not in ids


def test_greedy_generation_produces_varied_tokens(model, tokenizer) -> None:
    outputs = []
    for prompt in ("Hello, how are you?", "Explain the KV cache."):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )["input_ids"]
        with torch.no_grad():
            generated = model.generate(ids, max_new_tokens=16, do_sample=False)
        new = generated[0, ids.shape[1]:].tolist()
        assert len(new) == 16
        assert len(set(new)) > 4, "greedy decoding collapsed into a repetition"
        assert isinstance(tokenizer.decode(new, skip_special_tokens=True), str)
        outputs.append(new)
    assert outputs[0] != outputs[1]
