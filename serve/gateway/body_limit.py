"""An ASGI middleware that refuses request bodies over a size limit with a 413, before parsing.

It sits in front of everything else (authentication included), so an unauthenticated 64 MiB body
costs the gateway at most the limit's worth of reading: a ``Content-Length`` over the limit is
refused without reading anything, and a body without one (chunked) is counted as it arrives and
refused as soon as it passes the limit. The refusal is OpenAI's error envelope
(``request_too_large``).

Before answering, the rest of the body is read and discarded (never parsed or kept), up to
:data:`DRAIN_FACTOR` times the limit: when a connection is closed while the client is still
sending, the client's TCP stack resets it and the client sees a connection error instead of the
413. (Ray Serve's proxy finishes the connection as soon as the response is complete, so the
discarding cannot wait until after the answer, as nginx's lingering close does.) A client that
sends even more gets the 413 at once and is cut off.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

from ..errors import payload_too_large_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DRAIN_FACTOR = 32


class _BodyTooLarge(HTTPException):
    # NOTE: an HTTPException, so that FastAPI's body parsing re-raises it as it is instead of
    # turning it into a 400; whatever response the app then builds is replaced by the 413.
    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413 ``request_too_large``.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > self.max_bytes):
            await self._drain(receive, 0)
            await self._refuse(send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own answer to the aborted read; the 413 replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if exceeded and not started:
            await self._drain(receive, received)
            await self._refuse(send)

    async def _drain(self, receive: Receive, received: int) -> None:
        """Reads and drops what the client still sends, up to the drain cap (see module doc)."""
        while received <= DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            received += len(message.get("body", b""))

    async def _refuse(self, send: Send) -> None:
        error = payload_too_large_error(self.max_bytes)
        body = json.dumps(error.body().model_dump()).encode()
        await send({
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """The declared body size; -1 when the header is malformed (refused too)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None
