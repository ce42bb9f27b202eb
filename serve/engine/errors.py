"""What can go wrong when calling the engine, as plain exceptions that know nothing of HTTP.

The engine client raises them; the gateway maps them to the OpenAI error envelope in one place
(:func:`serve.errors.api_error`); the moderation layer handles them as rail failures.
"""

from __future__ import annotations


class EngineFailure(Exception):
    """Base class: a call to the engine did not produce its output."""


class EngineOverloaded(EngineFailure):
    """Every engine replica is full and the queue bound is reached; retry later.

    Attributes:
        retry_after_s: Suggested wait before retrying (None: no suggestion).
        status_hint: The status the deployment is configured to refuse with (503 or 429,
            ``engine.deployment.backpressure.status_code``); the gateway decides what to send.
    """

    def __init__(self, retry_after_s: float | None = None, status_hint: int = 503) -> None:
        super().__init__("the engine is at capacity")
        self.retry_after_s = retry_after_s
        self.status_hint = status_hint


class EngineUnavailable(EngineFailure):
    """No engine replica could serve the call (lost mid-request, none left, no output in time).

    Attributes:
        retry_after_s: Suggested wait before retrying.
    """

    def __init__(self, reason: str = "the engine is unavailable", retry_after_s: float = 1) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class EngineError(EngineFailure):
    """The call failed for any other reason; details are in the engine client's log."""
