"""Ports for the API: is one free, pick a free one, does the API answer on it."""

from __future__ import annotations

import socket

import httpx

from epochstream.errors import ConfigurationError


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (IPv4 or IPv6, as the host resolves), as a server would bind it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on host {host!r}: {exc.strerror}; pass --host (or set "
                                 f"EPOCHSTREAM_API_HOST) to an address of this machine") from None
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
    except OSError:
        s.close()
        raise
    return s


def port_free(host: str, port: int) -> bool:
    try:
        _bound(host, port).close()
    except OSError:  # in use, or not an address of this machine
        return False
    return True


def pick_port(host: str) -> int:
    with _bound(host, 0) as s:
        return s.getsockname()[1]


def api_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
