"""Access records and the package's loggers, through Ray Serve's own JSON formatter."""

from __future__ import annotations

import json
import logging

from serve.config import LoggingConfig
from serve.logs import AccessRecord, log_access, use_serve_log_handlers

SECRET_PROMPT = "my card number is 4111 1111 1111 1111"


def record(**overrides) -> AccessRecord:
    values = dict(method="POST", path="/v1/chat/completions", status=200, team="search", key_id="k1",
                  model="mistral-tiny", stream=True, cache="miss", prompt_tokens=12, completion_tokens=5,
                  latency_ms=84.1234, ttft_ms=20.5, finish_reasons=["stop"], completion_id="chatcmpl-1",
                  prompt=[{"role": "user", "content": SECRET_PROMPT}], completion="Sure.")
    return AccessRecord(**{**values, **overrides})


def test_an_access_record_is_one_json_line_with_its_fields_at_the_top(serve_log):
    log_access(record())
    (line,) = serve_log()
    assert line["event"] == "access" and line["levelname"] == "INFO"
    assert {k: line[k] for k in ("team", "key_id", "path", "status", "prompt_tokens", "completion_tokens")} == {
        "team": "search", "key_id": "k1", "path": "/v1/chat/completions", "status": 200,
        "prompt_tokens": 12, "completion_tokens": 5}
    assert line["latency_ms"] == 84.123 and line["ttft_ms"] == 20.5 and line["finish_reasons"] == ["stop"]
    assert line["message"] == "POST /v1/chat/completions 200 84.1ms"
    assert line["serve_access_log"] is True  # Serve's enable_access_log: false drops it


def test_text_is_never_logged_unless_asked(serve_log):
    log_access(record())
    log_access(record(), include_text=True)
    plain, with_text = serve_log()
    assert SECRET_PROMPT not in json.dumps(plain) and "Sure." not in json.dumps(plain)
    assert with_text["prompt"][0]["content"] == SECRET_PROMPT and with_text["completion"] == "Sure."


def test_unset_fields_are_left_out(serve_log):
    log_access(AccessRecord(method="GET", path="/v1/models", status=401, error_code="invalid_api_key"))
    (line,) = serve_log()
    assert "team" not in line and "ttft_ms" not in line and line["error_code"] == "invalid_api_key"


def test_the_package_loggers_write_through_serves_handlers_in_a_replica(serve_log):
    assert use_serve_log_handlers(("serve",))
    logging.getLogger("serve.gateway.pipeline").warning("redis unreachable", extra={"attempt": 2})
    (line,) = serve_log()
    assert line["message"] == "redis unreachable" and line["levelname"] == "WARNING" and line["attempt"] == 2


def test_outside_a_replica_nothing_changes():
    serve_logger = logging.getLogger("ray.serve")
    saved = serve_logger.handlers
    serve_logger.handlers = []
    try:
        before = logging.getLogger("guardrails").handlers
        assert not use_serve_log_handlers(("guardrails",))
        assert logging.getLogger("guardrails").handlers == before
    finally:
        serve_logger.handlers = saved


def test_serves_logging_config_follows_the_logging_section():
    from ray.serve.schema import LoggingConfig as RayLoggingConfig

    assert RayLoggingConfig(**LoggingConfig().serve_logging_config()).encoding == "JSON"
    assert LoggingConfig().serve_logging_config() == {"encoding": "JSON", "log_level": "INFO", "enable_access_log": True}
    assert LoggingConfig(encoding="TEXT", level="WARNING", access_log=False).serve_logging_config() == {
        "encoding": "TEXT", "log_level": "WARNING", "enable_access_log": False}


async def test_the_middleware_logs_each_api_request_once_with_what_the_app_noted(serve_log):
    import httpx
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    from serve.logs import AccessLogMiddleware, note

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat():
        note(team="search", prompt_tokens=3)

        async def body():
            yield "data: 1\n\n"
            note(completion_tokens=2, finish_reasons=["stop"])  # known only at the stream's end
            yield "data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models():
        return JSONResponse({"error": {"code": "invalid_api_key"}}, status_code=401)

    @app.get("/healthz")
    async def health():
        return {"ok": True}

    transport = httpx.ASGITransport(app=AccessLogMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v1/chat/completions", json={})).text.endswith("[DONE]\n\n")
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
    chat_line, models_line = serve_log()  # nothing for /healthz
    assert (chat_line["path"], chat_line["status"], chat_line["team"]) == ("/v1/chat/completions", 200, "search")
    assert (chat_line["prompt_tokens"], chat_line["completion_tokens"]) == (3, 2)
    assert chat_line["finish_reasons"] == ["stop"] and chat_line["latency_ms"] > 0
    assert (models_line["path"], models_line["status"], models_line["method"]) == ("/v1/models", 401, "GET")
    note(team="nobody")  # outside a request: ignored


def test_the_path_is_the_apps_own_under_a_route_prefix():
    from serve.logs import api_path

    assert api_path({"path": "/team-a/v1/models", "root_path": "/team-a"}) == "/v1/models"
    assert api_path({"path": "/v1/models", "root_path": ""}) == "/v1/models"
    assert api_path({"path": "/v1/models"}) == "/v1/models"
