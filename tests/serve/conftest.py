"""Fixtures shared by the serve unit tests."""

from __future__ import annotations

import io
import json
import logging

import pytest
from ray._common.formatters import JSONFormatter


@pytest.fixture
def serve_log():
    """Ray Serve's logger as a replica has it: a JSON-formatted handler, no propagation."""
    import ray.serve  # noqa: F401 - its import configures Serve's logger: replace that setup, not precede it

    serve_logger = logging.getLogger("ray.serve")
    saved = serve_logger.handlers, serve_logger.propagate, serve_logger.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    serve_logger.handlers, serve_logger.propagate = [handler], False
    serve_logger.setLevel(logging.INFO)
    packages = {name: (logging.getLogger(name).handlers, logging.getLogger(name).propagate) for name in ("serve",)}
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        serve_logger.handlers, serve_logger.propagate, serve_logger.level = saved
        for name, (handlers, propagate) in packages.items():
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate
