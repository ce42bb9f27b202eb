"""The one mapping of errors to OpenAI's envelope, engine exceptions included."""

from __future__ import annotations

import pytest

from serve.engine.errors import EngineError, EngineOverloaded, EngineUnavailable
from serve.errors import NotFoundError, RateLimitError, ServiceUnavailableError, api_error


@pytest.mark.parametrize(("status", "error_class", "error_type"),
                         [(503, ServiceUnavailableError, "server_error"), (429, RateLimitError, "requests")])
def test_an_engine_overload_is_the_configured_status_with_retry_after(status, error_class, error_type):
    error = api_error(EngineOverloaded(retry_after_s=1.5, status_hint=status))
    assert isinstance(error, error_class) and error.status == status and error.code == "engine_overloaded"
    assert error.headers == {"Retry-After": "2"}  # rounded up
    assert error.body().error.type == error_type


def test_an_overload_without_retry_after_sends_no_header():
    assert api_error(EngineOverloaded(None)).headers == {}


def test_a_lost_engine_is_a_503_to_retry():
    error = api_error(EngineUnavailable("replica lost"))
    assert error.status == 503 and error.code == "engine_unavailable" and error.headers == {"Retry-After": "1"}
    assert error.message == "The engine replica serving this request became unavailable. Please retry."


@pytest.mark.parametrize("raised", [EngineError("boom: secret detail"), RuntimeError("secret detail")])
def test_any_other_failure_is_a_500_that_reveals_nothing(raised):
    error = api_error(raised)
    assert error.status == 500 and error.code == "internal_error" and "secret" not in error.message


def test_an_api_error_is_itself():
    error = NotFoundError(message="x")
    assert api_error(error) is error
