"""`mistral-serve run` drains on SIGTERM: in-flight streams finish, new requests are refused
cleanly, then it exits. The real command in a subprocess: its own Ray, embedded Redis, the
tiny checkpoint, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

STREAMS = 6


class RunProcess:
    """``mistral-serve run`` with its output collected line by line."""

    def __init__(self, tiny_model_dir: Path, state_dir: Path, port: int) -> None:
        # A short private Ray temp dir (Unix socket paths are limited to 107 bytes); no
        # RAY_ADDRESS or Redis from the test session: the command starts its own of both.
        self.ray_tmp = tempfile.mkdtemp(prefix="msrun", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "MISTRAL_SERVE_"))}
        env |= {"MISTRAL_SERVE_TINY_MODEL_DIR": str(tiny_model_dir), "MISTRAL_SERVE_STATE_DIR": str(state_dir),
                "RAY_TMPDIR": self.ray_tmp, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
        command = [str(Path(sys.executable).with_name("mistral-serve")), "run", "--port", str(port)]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            assert self.process.poll() is None, f"mistral-serve run exited:\n{self.output()[-4000:]}"
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {timeout_s}s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def run_process(tiny_model_dir, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = RunProcess(tiny_model_dir, tmp_path / "state", port)
    process.port = port
    yield process
    process.kill()


async def stream_chat(client: httpx.AsyncClient, model: str, first_content: asyncio.Event) -> dict:
    """One streamed chat; what it received and when it received its last content."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 400, "stream": True}
    events, last_content_at = [], None
    async with client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
                if '"content":"' in line and '"content":""' not in line:
                    last_content_at = time.monotonic()
                    first_content.set()
    return {"events": events, "last_content_at": last_content_at}


async def probe_until_closed(client: httpx.AsyncClient, model: str, done: asyncio.Event) -> list[str]:
    """New requests during the drain, until the server stops: what each got."""
    seen = []
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    while not done.is_set():
        try:
            response = await client.post("/chat/completions", json=body)
        except httpx.TransportError:
            seen.append("closed")
            break
        code = response.json().get("error", {}).get("code") if response.status_code != 200 else "ok"
        seen.append(f"{response.status_code} {code} retry-after={response.headers.get('retry-after')}")
        await asyncio.sleep(0.2)
    return seen


async def test_sigterm_drains_in_flight_streams_then_exits(run_process):
    key = (await asyncio.to_thread(run_process.wait_for, r"export OPENAI_API_KEY=(\S+)", 240)).group(1)
    model = "mistral-tiny"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{run_process.port}/v1", headers=headers,
                                 timeout=120) as client:
        started = [asyncio.Event() for _ in range(STREAMS)]
        streams = [asyncio.create_task(stream_chat(client, model, event)) for event in started]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 120)

        run_process.process.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()
        stopped = asyncio.Event()
        probes = asyncio.create_task(probe_until_closed(client, model, stopped))
        results = await asyncio.gather(*streams)
        rc = await asyncio.to_thread(run_process.process.wait, 120)
        stopped.set()
        probed = await probes

    output = run_process.output()
    assert rc == 0, output[-4000:]
    # Every in-flight stream finished normally: a finish reason, then [DONE]; none was cut.
    for result in results:
        events = result["events"]
        assert events[-1] == "[DONE]", events[-3:]
        reasons = [c["finish_reason"] for e in events[:-1] for c in json.loads(e)["choices"] if c["finish_reason"]]
        assert reasons in (["stop"], ["length"]), events[-3:]
    # ... and at least one was still generating after the SIGTERM (the drain was real).
    assert max(r["last_content_at"] for r in results) > sigterm_at
    assert re.search(r"draining: [1-9]\d* request\(s\) in flight", output), output[-4000:]
    assert "drained: no request in flight" in output
    # New requests meanwhile: answered (arrived before the gateway heard of the drain), refused
    # with the OpenAI envelope and Retry-After, or not connected once Serve stopped. Never a 500.
    assert probed, "no request was tried during the drain"
    allowed = re.compile(r"^(200 ok retry-after=None|503 server_shutting_down retry-after=1|closed)$")
    assert all(allowed.match(p) for p in probed), probed
    assert any(p.startswith("503 server_shutting_down") for p in probed), probed
