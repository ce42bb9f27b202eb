"""The Engine Ray Serve deployment: one model replica running the batching engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict

import torch
from ray import serve

from ..config import EngineConfig
from .batching import BatchingEngine
from .loader import choose_runtime, context_length, load_model, load_tokenizer
from .types import EngineOutput, EngineRequest, SamplingParams

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 10.0


@serve.deployment(name="Engine")
class EngineDeployment:
    """Hosts one copy of the model; the gateway calls it through a deployment handle.

    Args:
        source: ``from_pretrained`` argument (hub id or local directory).
        revision: Hub revision.
        engine: Engine options.
    """

    def __init__(self, source: str, revision: str | None, engine: EngineConfig) -> None:
        runtime = choose_runtime(engine)
        if runtime.device.type == "cpu":
            # One intra-op thread per reserved CPU: more threads than cores makes OpenMP spin
            # against the other replicas on the machine and is many times slower.
            torch.set_num_threads(engine.torch_threads or max(1, int(engine.deployment.num_cpus)))
        tokenizer = load_tokenizer(source, revision)
        model = load_model(source, runtime, revision)
        self._engine = BatchingEngine(
            model,
            tokenizer,
            max_batch_size=engine.max_batch_size,
            max_model_len=context_length(model.config, engine.max_model_len),
            max_prefill_tokens=engine.max_prefill_tokens,
        ).start()

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineOutput]:
        """Streams one sequence's outputs (call with ``handle.options(stream=True)``)."""
        async for output in self._engine.generate(request):
            yield output

    async def ready(self) -> bool:
        """Whether the model answers: generates one token through the normal batching path."""
        probe = EngineRequest(
            request_id="readiness-probe",
            prompt_token_ids=(self._engine.tokenizer.bos_token_id or 1,),
            sampling=SamplingParams(max_tokens=1, temperature=0),
        )

        async def one_token() -> bool:
            async for output in self._engine.generate(probe):
                if output.finish_reason is not None:
                    return output.finish_reason in ("stop", "length")
            return False

        try:
            return await asyncio.wait_for(one_token(), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            return False

    def stats(self) -> dict:
        """The engine's counters (running, waiting, started, finished by reason, steps)."""
        return asdict(self._engine.stats())

    def check_health(self) -> None:
        """Ray Serve's health check: a dead engine thread gets the replica replaced."""
        if not self._engine.is_alive():
            raise RuntimeError("batching engine thread is not running")

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.stop()
