"""Draining the gateways before a whole application stops (``mistral-serve run``).

Ray Serve drains one replica at a time well (scale-in, node drains), but ``serve.shutdown()``
stops every deployment at once: the proxies close open streams, and the Moderation and Engine
replicas stop while gateway requests still need them. So a local run drains first:

1. Before deploying, the CLI creates a :class:`DrainSignal` actor named after the application.
2. Every Gateway replica counts its in-flight API requests (:class:`InFlightMiddleware`) and
   reports the count to that actor twice a second (:class:`DrainReporter`); the reply says
   whether to refuse new requests.
3. On SIGTERM or Ctrl-C the CLI sets the signal and waits (:func:`wait_for_drain`) until every
   live gateway replica refuses new requests and has none in flight, or the gateway's
   ``graceful_shutdown_timeout_s`` passes; only then does it call ``serve.shutdown()``.

A new request on a draining gateway gets 503 ``server_shutting_down`` with ``Retry-After``.
Without the actor (``serve run``, KubeRay) the reporter does nothing: there Ray Serve's own
graceful shutdown and node drains apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import ray
from fastapi.responses import JSONResponse

from ..errors import shutting_down_error

logger = logging.getLogger(__name__)

NAMESPACE = "mistral-serve"
REPORT_INTERVAL_S = 0.5
# A replica silent for this long is gone (stopped or crashed): it holds no requests we can save.
_STALE_AFTER_S = 3.0
# Paths that stay open while draining: probes (readyz answers 503 itself) and the admin API.
_ALWAYS_OPEN = ("/healthz", "/readyz", "/admin", "/metrics")


def signal_name(app_name: str) -> str:
    """The drain actor's name for an application."""
    return f"{app_name}-drain"


@dataclass
class GatewayReport:
    """One gateway replica's last report."""

    in_flight: int
    refusing: bool
    at: float


@ray.remote(num_cpus=0, max_restarts=0)
class DrainSignal:
    """Named actor: the drain flag, and what each gateway replica last reported."""

    def __init__(self) -> None:
        self._draining = False
        self._reports: dict[str, GatewayReport] = {}

    def report(self, replica: str, in_flight: int, refusing: bool) -> bool:
        """Records a replica's in-flight count; returns whether it must refuse new requests."""
        self._reports[replica] = GatewayReport(in_flight, refusing, time.monotonic())
        return self._draining

    def start(self) -> None:
        """From now on every gateway refuses new requests."""
        self._draining = True

    def live_reports(self) -> dict[str, GatewayReport]:
        """Reports of the replicas heard from recently."""
        now = time.monotonic()
        return {name: r for name, r in self._reports.items() if now - r.at < _STALE_AFTER_S}


class DrainState:
    """A gateway replica's in-flight count and whether it refuses new requests."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.refusing = False


class InFlightMiddleware:
    """ASGI middleware: counts API requests until their response (or stream) ends; refuses new
    ones with 503 while draining."""

    def __init__(self, app, state: DrainState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_ALWAYS_OPEN):
            await self.app(scope, receive, send)
            return
        if self.state.refusing:
            error = shutting_down_error()
            await JSONResponse(error.body().model_dump(), error.status, headers=error.headers)(scope, receive, send)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1


class DrainReporter:
    """Reports a replica's :class:`DrainState` to the application's :class:`DrainSignal`, if any.

    Args:
        app_name: The application (names the signal actor).
        replica: This replica's id (the key of its reports).
        state: What to report and where the answer goes.
    """

    def __init__(self, app_name: str, replica: str, state: DrainState) -> None:
        self.app_name, self.replica, self.state = app_name, replica, state
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Starts reporting when the application has a drain signal (a ``mistral-serve run``)."""
        try:
            actor = ray.get_actor(signal_name(self.app_name), namespace=NAMESPACE)
        except ValueError:
            return  # deployed by `serve run` or KubeRay: Serve's own graceful shutdown applies
        self._task = asyncio.create_task(self._loop(actor))

    async def stop(self) -> None:
        """Stops reporting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self, actor) -> None:
        while True:
            try:
                # Counted after the flag is known: a report with refusing=True is final news of
                # this replica's in-flight requests (no new ones can start).
                refusing = self.state.refusing
                draining = await actor.report.remote(self.replica, self.state.in_flight, refusing)
                if draining and not refusing:
                    logger.info("draining: refusing new requests, %d in flight", self.state.in_flight)
                self.state.refusing = self.state.refusing or draining
            except ray.exceptions.RayActorError:
                return  # the run is over
            except Exception:  # a missed report is retried on the next tick
                logger.warning("drain report failed", exc_info=True)
            await asyncio.sleep(REPORT_INTERVAL_S)


def wait_for_drain(signal, timeout_s: float, progress=print) -> bool:
    """Sets ``signal`` and waits until every live gateway replica refuses new requests and has
    none in flight (True), or ``timeout_s`` passes (False).

    Args:
        signal: The application's :class:`DrainSignal` handle.
        timeout_s: The most to wait (the gateway's graceful shutdown timeout).
        progress: Called with a line whenever the in-flight count changes.
    """
    ray.get(signal.start.remote())
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        reports = ray.get(signal.live_reports.remote())
        in_flight = sum(r.in_flight for r in reports.values())
        if in_flight != last:
            progress(f"draining: {in_flight} request(s) in flight on {len(reports)} gateway replica(s)")
            last = in_flight
        if all(r.refusing for r in reports.values()) and in_flight == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(REPORT_INTERVAL_S / 2)
