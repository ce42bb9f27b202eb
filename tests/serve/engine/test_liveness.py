"""The engine's liveness signal: a model that stops answering fails the health check."""

from __future__ import annotations

import threading
import time
import types

import pytest

from serve.engine.batching import BatchingEngine
from serve.engine.deployment import EngineDeployment, _Liveness
from serve.engine.types import EngineRequest, SamplingParams


@pytest.fixture
def engine(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=2, max_model_len=64).start()
    yield engine
    engine.stop()


class FakeClock:
    """The liveness check's clock, moved by the test: no sleeps racing the engine thread."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    from serve.engine import deployment

    fake = FakeClock()
    monkeypatch.setattr(deployment, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def wait_until(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_an_idle_engine_is_probed_and_stays_healthy(engine, clock):
    liveness = _Liveness(engine, stall_timeout_s=60)
    assert liveness.check() is None
    clock.now += 61
    assert liveness.check() is None  # idle for a whole period: a one-token probe is queued
    wait_until(lambda: engine.stats().finished.get("length", 0) == 1)
    assert liveness.check() is None  # the probe finished: progress


def test_a_hung_forward_pass_is_reported_while_work_is_pending(engine, tiny_model, clock):
    liveness = _Liveness(engine, stall_timeout_s=60)
    release = threading.Event()
    forward = tiny_model.forward
    tiny_model.forward = lambda *args, **kwargs: release.wait() and forward(*args, **kwargs)
    try:
        liveness.check()
        engine.submit(EngineRequest("stuck", (1, 5, 6), SamplingParams(max_tokens=4, temperature=0)), lambda _: None)
        assert liveness.check() is None  # new work is progress
        clock.now += 61
        message = liveness.check()
        assert message is not None and "no progress" in message and "1 sequences pending" in message
    finally:
        release.set()
        del tiny_model.forward  # back to the class's forward
    wait_until(lambda: sum(engine.stats().finished.values()) == 1)
    assert liveness.check() is None


def test_a_busy_engine_is_healthy(engine, clock):
    # Between two checks the engine made progress, however long that took on the wall clock; the
    # fake clock puts each check just inside the stall timeout.
    liveness = _Liveness(engine, stall_timeout_s=60)
    engine.submit(EngineRequest("long", (1, 5, 6), SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)),
                  lambda _: None)
    assert liveness.check() is None
    while engine.stats().running or engine.stats().waiting:
        # Read after the check, so the step waited for is one the check has not seen.
        steps = engine.stats().steps
        wait_until(lambda seen=steps: engine.stats().steps != seen or engine.stats().finished)
        clock.now += 59
        assert liveness.check() is None


def test_fault_injection_is_refused_unless_enabled():
    replica = object.__new__(EngineDeployment.func_or_class)
    replica._fault_injection = False
    with pytest.raises(PermissionError):
        replica.inject_fault()
