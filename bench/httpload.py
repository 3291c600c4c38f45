"""A minimal HTTP/1.1 keep-alive load client on asyncio streams, for measuring server throughput.

A general client (httpx) spends more CPU per request than the server does on a 304, so on a small
machine it measures itself. This one sends a fixed GET, reads the status line, headers and a
Content-Length body, checks the status, and repeats on the same connection.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


async def _connection(host: str, port: int, request: bytes, count: int, expect: int,
                      latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            t = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - t) * 1000)
            if status != expect:
                raise RuntimeError(f"expected {expect}, got {status}")
    finally:
        writer.close()


async def run(url: str, requests: int, concurrency: int, headers: dict[str, str] | None = None,
              expect: int = 200) -> tuple[list[float], float]:
    """(latencies in ms, requests per second) for `requests` GETs over `concurrency` connections."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    warm: list[float] = []
    await asyncio.gather(*(_connection(parts.hostname, parts.port, request, 10, expect, warm)
                           for _ in range(concurrency)))
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, request, requests // concurrency, expect,
                                       latencies) for _ in range(concurrency)))
    return latencies, len(latencies) / (time.perf_counter() - start)
