"""Network helpers written once, for the local stack, the tools in ``ops/`` and the tests."""

from __future__ import annotations

import ipaddress
import random
import socket
from urllib.parse import urlsplit

# Ports are picked below Linux's ephemeral range (32768+), where the OS hands out ports for
# outgoing connections and ``bind(0)``, and above Ray's default worker ports (10002-19999) that
# other Ray instances on the machine use; a port picked here cannot be taken meanwhile by a
# process of a starting node (or anyone's) asking the OS for a random one. Redis's 6379 is
# outside the range, so a port picked here never collides with a Redis on this machine.
PORT_LOW, PORT_HIGH = 20_000, 32_700
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A TCP port that is free now, outside the ephemeral range, not handed out before by this process.

    Raises:
        RuntimeError: no free port was found.
    """
    for _ in range(1000):
        port = random.randrange(PORT_LOW, PORT_HIGH)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def free_range(count: int) -> int:
    """The first port of ``count`` consecutive free ports (none handed out before by this process).

    Raises:
        RuntimeError: no free range was found.
    """
    for _ in range(1000):
        base = random.randrange(PORT_LOW, PORT_HIGH - count)
        ports = range(base, base + count)
        if not _handed_out.intersection(ports) and all(_bindable(p) for p in ports):
            _handed_out.update(ports)
            return base
    raise RuntimeError("no free port range found")


def is_loopback(url: str) -> bool:
    """Whether the URL's host is a loopback address (127.0.0.0/8, ::1) or ``localhost``.

    A host name other than ``localhost`` is not resolved on purpose: DNS could point anywhere.
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str, allow_remote: bool = False) -> None:
    """Refuses a URL whose host is not loopback: load and faults only ever go to this machine.

    Raises:
        ValueError: the host is not loopback and ``allow_remote`` is False.
    """
    if not allow_remote and not is_loopback(url):
        raise ValueError(f"{url} is not a loopback address; pass --allow-remote to send load to it")
