"""The shared network helpers: free ports and the loopback rule."""

from __future__ import annotations

import socket

import pytest

from serve.netutil import PORT_HIGH, PORT_LOW, free_port, free_range, is_loopback, require_loopback


def test_free_ports_are_bindable_outside_the_ephemeral_range_and_never_handed_out_twice():
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20 and all(PORT_LOW <= p < PORT_HIGH for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # free indeed
    base = free_range(5)
    assert not set(range(base, base + 5)) & set(ports)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.0.0.2/", "http://localhost:1/v1",
                                 "http://[::1]:8/v1"])
def test_loopback_urls_pass(url):
    assert is_loopback(url)
    require_loopback(url)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "https://api.openai.com/v1", "http://192.168.1.2/v1",
                                 "http://localhost.example.com/", "not a url"])
def test_other_urls_are_refused_unless_allowed(url):
    assert not is_loopback(url)
    with pytest.raises(ValueError, match="allow-remote"):
        require_loopback(url)
    require_loopback(url, allow_remote=True)
