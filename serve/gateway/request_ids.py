"""The platform's request id: the one Ray Serve's proxy accepts (``X-Request-Id``) or makes.

Ray Serve's HTTP proxy takes the client's ``X-Request-Id`` header (or generates an id), echoes it
in the response, puts it in the request context of every deployment the request reaches (the
Gateway, and through handle calls the Moderation and Engine replicas) and in their log records.
The API ids are built on it, so one id follows a request everywhere: a completion
``chatcmpl-<id>``, its engine sequences ``chatcmpl-<id>-<choice>``, its moderation audit events
(``request_id``), and the logs. :func:`platform_request_id` recovers it from a completion id.
"""

from __future__ import annotations

import re
import uuid

# Ids that are safe inside an API id and a log field; anything else gets a fresh id.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_PREFIXES = ("chatcmpl-", "cmpl-", "modr-")


def current_request_id() -> str | None:
    """The request id of the request being served, from Ray Serve's request context (None
    outside a Ray Serve replica, or when the id is not safe to embed)."""
    try:
        from ray.serve.context import _get_serve_request_context  # NOTE: Ray's only accessor

        request_id = _get_serve_request_context().request_id
    except Exception:  # noqa: BLE001 - not in a replica, or Ray moved it: ids stay random
        return None
    return request_id if request_id and _SAFE.match(request_id) else None


def new_api_id(prefix: str) -> str:
    """An API response id (``chatcmpl-...``, ``cmpl-...``, ``modr-...``) on the platform's request
    id, or on a fresh one outside a request."""
    return f"{prefix}-{current_request_id() or uuid.uuid4().hex}"


def platform_request_id(api_id: str) -> str:
    """The request id inside an API id (what to search the logs and the audit for)."""
    for prefix in _PREFIXES:
        if api_id.startswith(prefix):
            return api_id[len(prefix):]
    return api_id
