"""A Ray driver attached to the cluster that answers one JSON command per stdin line.

A process can only be attached to one Ray cluster, and the test session runs its own local Ray;
so the calls that need a Serve handle (engine stats, the test-only fault injection) run here, in
a child process, and come back as JSON lines on stdout::

    {"op": "stats"}                  -> {"ok": true, "result": {...}}   (one replica's counters)
    {"op": "inject_fault"}           -> {"ok": true, "result": "<replica id>"}

Run by :class:`Driver`; ``python -m ops.cluster.driver --address HOST:PORT`` for a manual session.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

ENGINE = "Engine"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="GCS address of the cluster (host:port)")
    parser.add_argument("--app", default="mistral-serve", help="Serve application name")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    # NOTE: stdout carries only the JSON answers; Ray logs to stderr.
    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
    handle = serve.get_deployment_handle(ENGINE, app_name=args.app)
    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            if command["op"] == "stats":
                result = handle.stats.remote().result(timeout_s=30)
            elif command["op"] == "inject_fault":
                result = handle.inject_fault.remote(command.get("kind", "hang")).result(timeout_s=30)
            else:
                raise ValueError(f"unknown op {command['op']!r}")
            print(json.dumps({"ok": True, "result": result}), flush=True)
        except Exception as error:  # noqa: BLE001 - reported to the caller
            print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}), flush=True)
    ray.shutdown()
    return 0


class Driver:
    """Runs :func:`main` in a child process and sends it commands.

    Args:
        address: The cluster's GCS address.
        env: The cluster's process environment (its auth token).
        log_path: Where the child's stderr goes.
    """

    def __init__(self, address: str, env: dict[str, str], log_path: Path, app: str = "mistral-serve",
                 timeout_s: float = 120) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))}
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ops.cluster.driver", "--address", address, "--app", app],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=root,
            text=True, start_new_session=True,
        )
        self._timeout_s = timeout_s
        self._read()  # "ready"

    def call(self, op: str, **arguments) -> object:
        """Sends one command; returns its result.

        Raises:
            RuntimeError: the command failed (the message says why).
        """
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> object:
        import selectors

        assert self._process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        if not selector.select(self._timeout_s):
            raise TimeoutError(f"driver did not answer within {self._timeout_s:.0f}s")
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"driver exited (code {self._process.poll()}); see {self._log.name}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        """Stops the child."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._log.close()


if __name__ == "__main__":
    sys.exit(main())
