"""Property-based fuzzing of the OpenAPI document against the running stack (schemathesis).

Every operation of the published document is called with generated requests, authenticated as a
team without limits (the /admin routes with the admin token): no response may be a 5xx, and every 4xx must be OpenAI's error envelope.
``make test`` runs a bounded pass (``MISTRAL_SERVE_FUZZ_EXAMPLES`` per operation, default 20);
``make fuzz`` runs a long one. Generation is derandomized (a fixed seed): a failure reproduces.
"""

from __future__ import annotations

import collections
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("MISTRAL_SERVE_FUZZ_EXAMPLES", "20"))
# Generated requests may ask for thousands of tokens; the tiny model on a CPU must answer quickly.
MAX_TOKENS = 4


@pytest.fixture(scope="session")
def api_schema(stack):
    return schemathesis.openapi.from_url(f"{stack.root_url}/openapi.json")


@pytest.fixture(scope="session")
def fuzz_headers(stack) -> dict[str, str]:
    return stack.auth(stack.key("sec-fuzz", rpm=0, tpm=0))


CASES: collections.Counter[str] = collections.Counter()  # cases sent, by operation
STATUSES: collections.Counter[str] = collections.Counter()  # responses, by status class


def bound_generation(body: object) -> None:
    """Caps the work a generated generation request asks for (values that are invalid stay)."""
    if not isinstance(body, dict) or not ({"messages", "prompt"} & set(body)):
        return
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(name), int) and not isinstance(body[name], bool) and body[name] > MAX_TOKENS:
            body[name] = MAX_TOKENS
    if "max_tokens" not in body and "max_completion_tokens" not in body:
        body["max_tokens"] = MAX_TOKENS


def assert_envelope_or_success(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict), response.text[:500]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        assert error["param"] is None or isinstance(error["param"], str)
        assert error["code"] is None or isinstance(error["code"], str)


def fuzz_operation(operation, stack, headers: dict[str, str]) -> None:
    """Runs hypothesis over one operation, valid and invalid requests alike (schemathesis's
    positive and negative generation); raises on the first (shrunk) failing case."""
    name = f"{operation.method.upper()} {operation.path}"
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @given(case=modes.flatmap(operation.as_strategy))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
    def run(case) -> None:
        bound_generation(case.body)
        response = case.call(base_url=stack.root_url, headers=headers, timeout=120)
        CASES[name] += 1
        STATUSES[f"{response.status_code // 100}xx"] += 1
        assert_envelope_or_success(response)

    run()


def test_no_server_errors_and_every_error_is_the_envelope(api_schema, stack, fuzz_headers):
    # NOTE: one test over every operation (the schema is only known once the stack runs); every
    # operation is fuzzed even when an earlier one fails, and all failures are reported.
    failures = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions", "/v1/moderations",
                                              "/v1/models", "/healthz", "/readyz"}
    for operation in operations:
        # The admin routes are fuzzed with the admin token, so that their handlers run too.
        headers = stack.admin() if operation.path.startswith("/admin") else fuzz_headers
        try:
            fuzz_operation(operation, stack, headers)
        except AssertionError as failure:
            failures[f"{operation.method.upper()} {operation.path}"] = str(failure)[:2000]
    # Cases actually sent (hypothesis stops early on small input spaces); shown with -s (make fuzz).
    print(f"fuzz cases sent: {sum(CASES.values())} ({dict(sorted(CASES.items()))}); "
          f"responses: {dict(sorted(STATUSES.items()))}")
    assert not failures, failures
