"""The Gateway Ray Serve deployment: the FastAPI ingress in front of the engine."""

from __future__ import annotations

import time

from fastapi import FastAPI
from ray import serve

from ..config import EngineConfig, GatewayConfig, ModelConfig
from ..engine.adapter import EngineAdapter
from ..engine.loader import context_length, load_model_config, load_tokenizer
from .engine_client import RayEngineClient
from .pipeline import Pipeline
from .routes import create_app


@serve.deployment(name="Gateway")
@serve.ingress()
class GatewayDeployment:
    """Parses, validates and tokenizes requests on CPU, then streams from the Engine deployment.

    Args:
        engine_handle: Handle of the Engine deployment.
        source: ``from_pretrained`` argument of the served model (for its tokenizer and config).
        model: Model options (served name, revision).
        engine: Engine options (the context limit the gateway enforces).
        gateway: Gateway options.
    """

    def __init__(self, engine_handle, source: str, model: ModelConfig, engine: EngineConfig, gateway: GatewayConfig) -> None:
        tokenizer = load_tokenizer(source, model.revision)
        max_model_len = context_length(load_model_config(source, model.revision), engine.max_model_len)
        self._pipeline = Pipeline(
            EngineAdapter(tokenizer, max_model_len, gateway.max_choices),
            RayEngineClient(engine_handle),
            model.served_name,
        )
        self._started_at = int(time.time())

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Ray Serve after ``__init__``: the app is built from this replica's state."""
        return create_app(self._pipeline, self._started_at)
