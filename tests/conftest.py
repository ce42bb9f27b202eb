"""Shared fixtures. Tests never reach a model hub: the tiny checkpoint is generated locally."""

from __future__ import annotations

import os
from pathlib import Path

# NOTE: must happen before huggingface_hub is imported anywhere: it reads the variable once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread: this suite shares two cores with Ray's processes, and OpenMP threads
# spinning against them make CPU matmuls many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tiny Mistral checkpoint (built once per test session)."""
    from serve.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-mistral")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The tiny checkpoint's tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """The tiny checkpoint's model on the CPU, fp32, SDPA attention."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
