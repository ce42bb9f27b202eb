"""ops/tools/torch_index.py: which index `make install` gives pip for torch, on which machine."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ops" / "tools" / "torch_index.py"


@pytest.fixture
def index_url():
    """A loopback 'wheel index' that answers for /torch/."""

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/simple/torch/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()


def run(*args: str, gpus: bool | None = None, tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if gpus is not None and tmp_path is not None:
        # A stand-in nvidia-smi first on PATH: lists a GPU, or fails as without a driver.
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        (fake / "nvidia-smi").write_text("#!/bin/sh\n" + ("echo 'GPU 0: NVIDIA H200 (UUID: GPU-x)'\n" if gpus else "exit 9\n"))
        (fake / "nvidia-smi").chmod(0o755)
        env["PATH"] = f"{fake}:{env['PATH']}"
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_reachable_index_is_passed_as_an_extra_index(index_url):
    done = run(index_url)
    assert done.returncode == 0 and done.stdout.strip() == f"--extra-index-url {index_url}"


def test_an_unreachable_index_is_skipped_with_a_note_not_an_error(tmp_path):
    unreachable = "http://127.0.0.1:9/simple"  # the discard port: nothing listens
    done = run(unreachable)
    assert done.returncode == 0 and done.stdout == ""
    assert "cannot be reached" in done.stderr


def test_none_passes_nothing():
    assert run("none").stdout == ""


def test_auto_on_a_cuda_machine_keeps_pypis_build(tmp_path):
    done = run("auto", gpus=True, tmp_path=tmp_path)
    assert done.stdout == "" and "CUDA device is present" in done.stderr


def test_auto_without_a_gpu_asks_for_the_cpu_index(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import torch_index
    finally:
        sys.path.remove(str(SCRIPT.parent))
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    asked = []
    monkeypatch.setattr(torch_index, "reachable", lambda url: asked.append(url) or True)
    assert torch_index.choose("auto") == torch_index.CPU_INDEX == "https://download.pytorch.org/whl/cpu"
    assert asked == [torch_index.CPU_INDEX]
    assert run("auto", gpus=False, tmp_path=tmp_path).returncode == 0  # a driver that fails: still CPU


def test_the_makefile_installs_torch_through_it():
    makefile = (ROOT / "Makefile").read_text()
    assert 'ops/tools/torch_index.py "$(TORCH_INDEX)") "$(TORCH_SPEC)"' in makefile
    assert "TORCH_INDEX ?= auto" in makefile
