"""What the benchmark scripts share: the header every figure set starts with, percentiles, and a real API
server on a loopback port."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def header() -> None:
    """Machine, command and the load others put on this (shared) host: printed before any figure."""
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average at start (other processes on this host): {os.getloadavg()[0]:.1f}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_api(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`uvicorn query_api` in its own process with `env` (EPOCHSTREAM_*), once it answers /healthz."""
    from epochstream.broker import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "query_api.app:app_from_env", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env={**os.environ, **env}, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the API did not start")


@contextlib.contextmanager
def scratch_database(admin_url: str | None):
    """The URL of a new database for one size's read model (dropped afterwards), or "" for SQLite."""
    if not admin_url:
        yield ""
        return
    import psycopg
    from psycopg import sql

    name = f"epochstream_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
