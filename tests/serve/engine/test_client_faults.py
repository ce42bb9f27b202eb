"""The engine client under overload and replica loss: engine exceptions (no HTTP), one safe retry."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError

from serve.engine.client import RayEngineClient
from serve.engine.errors import EngineOverloaded, EngineUnavailable
from serve.engine.types import EngineOutput, EngineRequest, SamplingParams

REQUEST = EngineRequest("r", (1, 2), SamplingParams(max_tokens=2))


class FakeResponses:
    """A streaming DeploymentResponseGenerator: yields ``pieces`` then raises ``error``."""

    def __init__(self, pieces, error=None, cancel_error=None):
        self.pieces, self.error, self.cancel_error, self.cancelled = pieces, error, cancel_error, False

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        for piece in self.pieces:
            yield EngineOutput(text=piece, num_tokens=1)
        if self.error is not None:
            raise self.error

    def cancel(self):
        self.cancelled = True
        if self.cancel_error is not None:
            raise self.cancel_error  # as Ray's cancel() re-raises a failed assignment


class FakeHandle:
    """Returns the next prepared response on every ``generate.remote`` call."""

    def __init__(self, *responses):
        self.responses, self.calls = list(responses), 0
        self.generate = self

    def options(self, stream):
        return self

    def remote(self, request):
        self.calls += 1
        return self.responses.pop(0)


async def collect(client):
    return [output.text async for output in client.generate(REQUEST)]


@pytest.mark.parametrize("status", [503, 429])
async def test_backpressure_becomes_an_overload_with_the_configured_status_and_retry_after(status):
    overload = BackPressureError(num_queued_requests=4, max_queued_requests=4, status_code=status, retry_after_s=1.5)
    # cancel() re-raising the assignment error must not replace the engine error.
    handle = FakeHandle(FakeResponses([], overload, cancel_error=overload))
    with pytest.raises(EngineOverloaded) as raised:
        await collect(RayEngineClient(handle))
    assert raised.value.status_hint == status and raised.value.retry_after_s == 1.5


async def test_a_replica_lost_before_any_output_is_retried_once():
    first = FakeResponses([], ActorDiedError())
    handle = FakeHandle(first, FakeResponses(["a", "b"]))
    assert await collect(RayEngineClient(handle)) == ["a", "b"]
    assert handle.calls == 2 and first.cancelled


async def test_a_replica_lost_twice_is_a_503_to_retry():
    handle = FakeHandle(FakeResponses([], ActorDiedError()), FakeResponses([], ActorDiedError()))
    with pytest.raises(EngineUnavailable) as raised:
        await collect(RayEngineClient(handle))
    assert raised.value.retry_after_s > 0


async def test_a_replica_lost_mid_stream_is_not_retried():
    handle = FakeHandle(FakeResponses(["a"], ActorDiedError()), FakeResponses(["x"]))
    received = []
    with pytest.raises(EngineUnavailable):
        async for output in RayEngineClient(handle).generate(REQUEST):
            received.append(output.text)
    assert received == ["a"] and handle.calls == 1  # the client saw output: a retry would repeat it


class SilentResponses(FakeResponses):
    """An assignment that never completes (no replica left to take the request)."""

    async def _iterate(self):
        await asyncio.sleep(3600)
        yield EngineOutput(text="never")


async def test_a_request_without_output_does_not_wait_forever():
    silent = SilentResponses([])
    client = RayEngineClient(FakeHandle(silent), first_output_timeout_s=0.05)
    with pytest.raises(EngineUnavailable):
        await collect(client)
    assert silent.cancelled
