"""The Engine Ray Serve deployment: one model replica running the batching engine."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict

import torch
from ray import serve

from ..config import EngineConfig
from ..logs import use_serve_log_handlers
from .batching import BatchingEngine
from .loader import choose_runtime, context_length, load_model, load_tokenizer
from .telemetry import EngineMetricsReporter, EngineTelemetry
from .types import EngineOutput, EngineRequest, SamplingParams

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 10.0


def _assigned_cpus() -> int:
    """Whole CPUs Ray reserved for this replica (at least one)."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


@serve.deployment(name="Engine")
class EngineDeployment:
    """Hosts one copy of the model; the gateway calls it through a deployment handle.

    Args:
        source: ``from_pretrained`` argument (hub id or local directory).
        revision: Hub revision.
        engine: Engine options.
    """

    def __init__(self, source: str, revision: str | None, engine: EngineConfig) -> None:
        use_serve_log_handlers()  # this package's logs in the replica's structured log
        runtime = choose_runtime(engine)
        if runtime.device.type == "cpu":
            # One intra-op thread per reserved CPU: more threads than cores makes OpenMP spin
            # against the other replicas on the machine and is many times slower. NOTE: the CPUs
            # Ray assigned, not engine.deployment: those options travel in the Serve config's
            # deployments[], not in the application's args.
            torch.set_num_threads(engine.torch_threads or _assigned_cpus())
        tokenizer = load_tokenizer(source, revision)
        model = load_model(source, runtime, revision)
        telemetry = EngineTelemetry()
        self._engine = BatchingEngine(
            model,
            tokenizer,
            max_batch_size=engine.max_batch_size,
            max_model_len=context_length(model.config, engine.max_model_len),
            max_prefill_tokens=engine.max_prefill_tokens,
            telemetry=telemetry,
        ).start()
        # Metrics: queue depth, running, TTFT/ITL per sequence, tokens (serve/metrics.py).
        self._metrics = EngineMetricsReporter(telemetry, self._engine.stats, engine.max_batch_size).start()
        self._liveness = _Liveness(self._engine, engine.stall_timeout_s)
        self._fault_injection = engine.fault_injection

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
        except TimeoutError:
            return False

    def stats(self) -> dict:
        """The engine's counters (running, waiting, started, finished by reason, steps)."""
        return asdict(self._engine.stats())

    def check_health(self) -> None:
        """Ray Serve's health check: a dead engine thread, or a model that stopped answering,
        gets the replica replaced (after Ray Serve's three failed checks in a row)."""
        if not self._engine.is_alive():
            raise RuntimeError("batching engine thread is not running")
        stalled = self._liveness.check()
        if stalled is not None:
            raise RuntimeError(stalled)

    def inject_fault(self, kind: str = "hang") -> str:
        """TEST ONLY, refused unless ``engine.fault_injection``: every later forward pass of this
        replica's model blocks forever (a hung GPU), and a probe is queued so that the stall shows
        without traffic. Returns this replica's id."""
        if not self._fault_injection:
            raise PermissionError("fault injection is disabled (engine.fault_injection)")
        if kind != "hang":
            raise ValueError(f"unknown fault {kind!r}")
        blocked = threading.Event()  # never set
        self._engine.model.forward = lambda *args, **kwargs: blocked.wait()
        self._liveness.probe()
        logger.warning("fault injected: the model of this replica no longer answers")
        return serve.get_replica_context().replica_id.unique_id

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.stop()
        reporter = getattr(self, "_metrics", None)
        if reporter is not None:
            reporter.stop()


class _Liveness:
    """Tells a model that stopped answering from one that is busy or idle.

    Progress is any change of the engine's counters: a sequence submitted or finished, a decode
    step. Sequences pending with no progress for ``stall_timeout_s`` is a stall. An idle engine
    has nothing to progress on, so after ``stall_timeout_s`` of idleness it gets a one-token probe:
    a model that hung while idle is caught before traffic reaches it.
    """

    def __init__(self, engine: BatchingEngine, stall_timeout_s: float) -> None:
        self._engine = engine
        self._timeout_s = stall_timeout_s
        self._signature: tuple[int, ...] = ()
        self._since = time.monotonic()

    def check(self) -> str | None:
        """Why the engine is stalled, or None (called from each health check)."""
        stats = self._engine.stats()
        finished = sum(stats.finished.values())
        signature = (stats.started, stats.steps, finished)
        now = time.monotonic()
        if signature != self._signature:
            self._signature, self._since = signature, now
            return None
        if now - self._since <= self._timeout_s:
            return None
        pending = stats.started - finished  # waiting, being prefilled or decoding
        if pending:
            return f"engine made no progress for {now - self._since:.0f}s with {pending} sequences pending"
        self.probe()
        return None

    def probe(self) -> None:
        """Queues a one-token generation whose only purpose is to make progress observable."""
        self._engine.submit(
            EngineRequest(
                request_id=f"liveness-{uuid.uuid4().hex[:8]}",
                prompt_token_ids=(self._engine.tokenizer.bos_token_id or 1,),
                sampling=SamplingParams(max_tokens=1, temperature=0),
            ),
            lambda _output: None,
        )
