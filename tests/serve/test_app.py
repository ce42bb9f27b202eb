"""The app builder injects what the Moderation deployment needs from the platform."""

from __future__ import annotations

import functools

from guardrails.metrics import LABELS
from serve.app import bind_moderation
from serve.config import ModerationConfig
from serve.engine.client import RayEngineClient
from serve.metrics import moderation_metrics
from serve.prompts.loader import load_prompt_encoder


def test_the_moderation_deployment_gets_the_engine_client_prompt_encoder_and_metrics():
    config = ModerationConfig()
    bound = bind_moderation(config, "engine-app", "/models/m", "rev1", 2048, "mistral",
                            name="Moderation")._bound_deployment
    assert bound.init_args == (config, "engine-app")
    kwargs = bound.init_kwargs
    assert kwargs["engine_client"] is RayEngineClient and kwargs["max_model_len"] == 2048
    tokenizer = kwargs["tokenizer"]
    # The gateway's own prompt encoder: self-check prompts are encoded like the API's.
    assert isinstance(tokenizer, functools.partial) and tokenizer.func is load_prompt_encoder
    assert tokenizer.args == ("/models/m", "rev1", "mistral")
    assert kwargs["metrics"] is moderation_metrics and set(LABELS) <= set(vars(moderation_metrics()))


def test_without_an_engine_nothing_engine_related_is_injected():
    kwargs = bind_moderation(ModerationConfig())._bound_deployment.init_kwargs
    assert kwargs["engine_client"] is None and kwargs["tokenizer"] is None
