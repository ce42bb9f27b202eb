"""``make bench``: the engine comparison, then a load sweep against a service this script starts.

1. :mod:`ops.bench.engine_compare` on the tiny checkpoint (before the service starts, so Ray's
   processes do not compete with it for the CPU);
2. ``mistral-serve run --config serve/configs/local.yaml`` as a subprocess on a free loopback
   port, with its own state directory (its own embedded Redis and demo key), then
   :mod:`ops.bench.load` against it through the ``openai`` client, then
   :mod:`ops.bench.tenancy` (prompt cache hit vs miss, gateway overhead on its Redis), then a
   clean stop;
3. ``bench.json`` and ``bench.png`` in ``ops/results/`` (git-ignored), and a summary table.

Run: ``make bench`` or ``HF_HUB_OFFLINE=1 python -m ops.bench.run [--skip-engine] [--skip-load]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serve.netutil import free_port

from . import constrained, engine_compare, engine_sweep, load, quant, tenancy

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "results"
_API_KEY = re.compile(r"OPENAI_API_KEY=(\S+)")
_UP_BANNER = "mistral-serve is up"


# A local Ray start was seen to stop by itself before the app was up (exit status 0, "shutting
# down" right after start) while another Ray cluster was starting on this 2-core machine; a
# second start worked. One retry keeps `make bench` from failing on that.
STARTUP_ATTEMPTS = 2


class ServiceExited(RuntimeError):
    """The service process ended before it was ready."""

    def __init__(self, returncode: int, log_tail: str) -> None:
        super().__init__(f"the service exited with {returncode}:\n{log_tail}")
        self.returncode = returncode


@dataclass(frozen=True)
class Service:
    """A running service started by :func:`running_service`."""

    base_url: str
    api_key: str
    log_path: Path
    redis_url: str


def _service_command(config: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("mistral-serve")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "serve.cli"]
    return [*base, "run", "--config", str(config), "--port", str(port)]


def _service_env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"  # the banner (and its key) must reach the log at once
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A private state directory, and no configured Redis: the benchmark's service starts its own
    # embedded Redis, so its demo-key rotation never revokes the key of a developer's `make run`
    # and its usage never lands in a shared Redis.
    env["MISTRAL_SERVE_STATE_DIR"] = str(state_dir)
    for name in ("MISTRAL_SERVE_REDIS_URL", "MISTRAL_SERVE_ADMIN_TOKEN", "MISTRAL_SERVE_HTTP_HOST"):
        env.pop(name, None)
    return env


def _default_sigint() -> None:
    # A child started from a background shell inherits SIGINT as ignored, and Python then never
    # raises KeyboardInterrupt: restore the default so our SIGINT stops it like Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until_up(
    process: subprocess.Popen, log_path: Path, root_url: str, timeout_s: float, log_offset: int = 0
) -> str:
    """Waits for the banner and a 200 from ``/readyz``; returns the demo API key (or "unused").

    Only the log after byte ``log_offset`` is read (the output of this start).

    Raises:
        ServiceExited: the service process ended.
        RuntimeError: the service did not become ready within ``timeout_s``.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(trust_env=False, timeout=15) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceExited(process.returncode, _log_tail(log_path))
            with open(log_path, "rb") as file:
                file.seek(log_offset)  # only this start's output: an earlier one may hold a stale key
                log = file.read().decode("utf-8", errors="replace")
            if _UP_BANNER in log:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{root_url}/readyz").status_code == 200:
                        match = _API_KEY.search(log)
                        # A service without API keys (older versions) accepts any bearer value.
                        return match.group(1) if match else "unused"
            time.sleep(1)
    raise RuntimeError(f"the service was not ready after {timeout_s:.0f} s:\n{_log_tail(log_path)}")


def stop_service(process: subprocess.Popen, timeout_s: float = 90) -> None:
    """Stops the service like Ctrl-C (SIGINT), escalating to SIGTERM and SIGKILL on timeout.

    The service ran in its own process group (Ray's daemons and the embedded Redis with it);
    whatever of that group outlives the service process is ended too.
    """
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
    # NOTE: the group id is the service's pid (start_new_session); only our own children are in it.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(3)


@contextlib.contextmanager
def running_service(log_path: Path, *, config: Path | None = None, startup_timeout_s: float = 300) -> Iterator[Service]:
    """Starts ``mistral-serve run`` on a free loopback port and stops it on exit.

    Args:
        log_path: Where the service's output goes.
        config: Deployment YAML (default: the packaged ``local`` config, tiny checkpoint on CPU).
        startup_timeout_s: How long to wait for readiness (per attempt).

    Raises:
        RuntimeError: the service did not come up (in :data:`STARTUP_ATTEMPTS` starts).
    """
    from serve.config import packaged_config_path

    log_path.parent.mkdir(parents=True, exist_ok=True)
    command_config = config or packaged_config_path("local")
    with tempfile.TemporaryDirectory(prefix="mistral-serve-bench-") as state_dir:
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            port = free_port()
            log_offset = log_path.stat().st_size if attempt > 1 else 0
            with open(log_path, "ab" if attempt > 1 else "wb") as log:
                process = subprocess.Popen(
                    _service_command(command_config, port),
                    env=_service_env(Path(state_dir)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: Ctrl-C here does not hit it mid-run
                    preexec_fn=_default_sigint,  # no other threads run at this point
                )
            root = f"http://127.0.0.1:{port}"
            try:
                api_key = wait_until_up(process, log_path, root, startup_timeout_s, log_offset)
            except ServiceExited as error:
                stop_service(process)
                if attempt == STARTUP_ATTEMPTS:
                    raise RuntimeError(str(error)) from None
                print(f"the service stopped during start-up ({error.returncode}); starting it again", flush=True)
                continue
            except BaseException:
                stop_service(process)
                raise
            try:
                from serve.local_stack import LocalStack

                stack = LocalStack.load(Path(state_dir))
                yield Service(base_url=f"{root}/v1", api_key=api_key, log_path=log_path,
                              redis_url=stack.redis_url if stack else "")
            finally:
                stop_service(process)
            return


def machine_info() -> dict:
    """What the numbers were measured on."""
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def plot(results: dict, path: Path) -> None:
    """Writes the figure: tokens/s, TTFT and ITL against concurrency, and the engine comparison."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(20, 9.6), layout="constrained")
    grid = fig.subplots(2, 4)
    axes = grid[0]
    for ax, key, draw in ((grid[1][0], "engine_sweep", engine_sweep.plot_on), (grid[1][1], "quantization", quant.plot_on)):
        if results.get(key):
            draw(ax, results[key])
        else:
            ax.text(0.5, 0.5, f"{key} skipped", ha="center", va="center", transform=ax.transAxes)
    for ax in grid[1][2:]:
        ax.set_axis_off()
    levels = (results.get("load") or {}).get("levels", [])
    if levels:
        conc = [lv["concurrency"] for lv in levels]

        def ms(key: str) -> list[float]:
            return [float("nan") if lv[key] is None else lv[key] * 1000 for lv in levels]

        axes[0].plot(conc, [lv["output_tokens_per_s"] for lv in levels], "o-")
        axes[0].set(title="Output tokens/s (service)", ylabel="tokens/s")
        axes[0].set_ylim(bottom=0)
        for ax, name, title in ((axes[1], "ttft", "Time to first token"), (axes[2], "itl", "Inter-token latency")):
            ax.plot(conc, ms(f"{name}_p50_s"), "o-", label="p50")
            ax.plot(conc, ms(f"{name}_p99_s"), "s--", label="p99")
            ax.set(title=title, ylabel="ms")
            ax.legend()
        for ax in axes[:3]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(conc, [str(c) for c in conc])
            ax.set_xlabel("concurrent streams")
            ax.grid(alpha=0.3)
    else:
        for ax in axes[:3]:
            ax.text(0.5, 0.5, "load sweep skipped", ha="center", va="center", transform=ax.transAxes)
    engine = results.get("engine_compare")
    ax = axes[3]
    if engine:
        labels = ["generate\none at a time", "generate\nstatic batch", "BatchingEngine"]
        values = [engine[k]["tokens_per_s"] for k in ("one_at_a_time", "static_batch", "engine")]
        bars = ax.bar(labels, values, color=["#999999", "#6f8fbf", "#d9822b"])
        ax.bar_label(bars, fmt="%.0f")
        ax.set_ylim(0, max(values) * 1.3)  # headroom for the ratios above the bars
        ax.set(
            title=f"Engine, {engine['requests']} requests x {engine['new_tokens_per_request']} tokens",
            ylabel="tokens/s",
        )
        ax.text(
            0.02, 0.97,
            f"engine / one-at-a-time: {engine['engine_vs_one_at_a_time']:.2f}x\n"
            f"engine / static batch: {engine['engine_vs_static_batch']:.2f}x",
            transform=ax.transAxes, va="top",
        )
    else:
        ax.text(0.5, 0.5, "engine comparison skipped", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"mistral-serve bench, tiny checkpoint on CPU ({results['generated_at']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def print_summary(results: dict) -> None:
    """Prints the engine comparison and the load sweep as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped or logged: do not wrap the tables at 80 columns
    engine = results.get("engine_compare")
    if engine:
        table = Table(
            title=f"Engine vs generate: {engine['requests']} requests x {engine['new_tokens_per_request']} "
            f"new tokens ({engine['device']}, {engine['torch_threads']} thread, best of {engine['repeats']})"
        )
        for column in ("method", "tokens", "seconds", "tokens/s"):
            table.add_column(column, justify="left" if column == "method" else "right")
        labels = {
            "one_at_a_time": "(a) generate, one at a time",
            "static_batch": "(b) generate, static batch",
            "engine": "(c) BatchingEngine",
        }
        for key, label in labels.items():
            r = engine[key]
            table.add_row(label, str(r["output_tokens"]), f"{r['seconds']:.2f}", f"{r['tokens_per_s']:.1f}")
        console.print(table)
        console.print(
            f"[bold]engine / one-at-a-time at concurrency {engine['requests']}: "
            f"{engine['engine_vs_one_at_a_time']:.2f}x[/]   engine / static batch: "
            f"{engine['engine_vs_static_batch']:.2f}x"
        )
    sweep = results.get("load")
    if sweep:
        table = Table(
            title=f"Load sweep: {sweep['model']} via the openai client, streamed, max_tokens "
            f"{sweep['max_tokens']} (latencies in ms)"
        )
        for column in ("concurrency", "requests", "errors", "tokens/s", "TTFT p50", "TTFT p99",
                       "ITL p50", "ITL p99", "E2E p50", "E2E p99"):
            table.add_column(column, justify="right")

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f}"

        for lv in sweep["levels"]:
            table.add_row(
                str(lv["concurrency"]), str(lv["requests"]),
                f"[red]{lv['errors']}[/]" if lv["errors"] else "0",
                f"{lv['output_tokens_per_s']:.1f}",
                ms(lv["ttft_p50_s"]), ms(lv["ttft_p99_s"]), ms(lv["itl_p50_s"]), ms(lv["itl_p99_s"]),
                ms(lv["e2e_p50_s"]), ms(lv["e2e_p99_s"]),
            )
        console.print(table)
        for lv in sweep["levels"]:
            for sample in lv["error_samples"]:
                console.print(f"[red]concurrency {lv['concurrency']} error:[/] {sample}")


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make bench``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-engine", action="store_true", help="skip the engine comparison")
    parser.add_argument("--skip-load", action="store_true", help="skip the service and its load sweep")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where bench.json/png go (default ops/results)")
    parser.add_argument("--tokens", type=int, default=128, help="engine comparison: new tokens per request")
    parser.add_argument("--concurrency", type=int, default=16, help="engine comparison: requests / batch size")
    parser.add_argument("--load-concurrency", default="1,16,32,64", help="load sweep levels (comma-separated)")
    parser.add_argument("--sweep-levels", default="1,16,32,64", help="engine sweep levels (comma-separated)")
    parser.add_argument("--vllm-python", help="python of vLLM's own virtual environment: adds vLLM's engine "
                        "to the engine sweep (docs/scaling.md)")
    parser.add_argument("--requests", type=int, help="load sweep: requests per level (default: see ops.bench.load)")
    parser.add_argument("--max-tokens", type=int, default=64, help="load sweep: completion limit per request")
    args = parser.parse_args(argv)

    results: dict = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "engine_compare": None,
        "engine_sweep": None,
        "quantization": None,
        "load": None,
    }
    if not args.skip_engine:
        print(f"engine comparison: {args.concurrency} requests x {args.tokens} tokens ...", flush=True)
        results["engine_compare"] = engine_compare.compare(tokens=args.tokens, concurrency=args.concurrency)
        print("engine sweep (generate, our engine, vLLM when installed) ...", flush=True)
        results["engine_sweep"] = engine_sweep.sweep(levels=[int(c) for c in args.sweep_levels.split(",")],
                                                     vllm_python=args.vllm_python)
        print(engine_sweep.format_report(results["engine_sweep"]), flush=True)
        print("quantization modes ...", flush=True)
        results["quantization"] = quant.measure()
        print(quant.format_report(results["quantization"]), flush=True)
        print(f"constrained decoding overhead: {args.concurrency} sequences x 64 tokens ...", flush=True)
        results["constrained"] = constrained.compare(tokens=64, concurrency=args.concurrency)
    if not args.skip_load:
        log_path = args.out_dir / "service.log"
        print(f"starting mistral-serve (log: {log_path}) ...", flush=True)
        with running_service(log_path) as service:
            print(f"load sweep against {service.base_url} ...", flush=True)
            results["load"] = asyncio.run(
                load.sweep(
                    service.base_url,
                    api_key=service.api_key,
                    concurrencies=[int(c) for c in args.load_concurrency.split(",") if c.strip()],
                    requests_per_level=args.requests,
                    max_tokens=args.max_tokens,
                )
            )
            print("prompt cache hit vs miss, and gateway overhead ...", flush=True)
            results["tenancy"] = {
                "cache": asyncio.run(tenancy.cache_hit_vs_miss(service.base_url, service.api_key, "mistral-tiny",
                                                               requests=30, max_tokens=32)),
                "overhead": asyncio.run(tenancy.gateway_overhead(service.redis_url, iterations=500)),
            }
        results["service_log"] = str(log_path)

    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out_dir / "bench.json", args.out_dir / "bench.png"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(results, png_path)
    print_summary(results)
    if results.get("constrained"):
        print(constrained.format_report(results["constrained"]))
    if results.get("tenancy"):
        tenancy.print_report(results["tenancy"]["cache"], results["tenancy"]["overhead"])
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
