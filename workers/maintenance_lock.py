"""The maintenance lock: one `compact`, `rebuild` or `migrate` at a time on a deployment.

An advisory `fcntl.flock` on `<data_dir>/maintenance.lock`. Drains never take it (they only add new
segment files, which both maintenance jobs tolerate); two compactions would merge the same parts, and a
compaction deleting parts under a rebuild's replay would fail it, so those exclude each other. The kernel
drops the lock when its holder dies, even by SIGKILL: a crashed job never leaves the directory locked,
and the next holder cleans up what the crashed one left.

A flock only excludes processes of one host. Where hosts share the log (`EPOCHSTREAM_LOG_URL=s3://…`) or the
read model (`EPOCHSTREAM_READ_MODEL_URL=postgresql://…`), each host has its own data directory, so the
flock alone would let two hosts compact the same parts, or one host's leftover cleaning drop the schema
another host's rebuild is building. There the lock is also taken on the queue broker (`Keys.maintenance`),
with the drain locks' TTL rule (`workers.locks`): heartbeated while held, free within its TTL once its
holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from epochstream.errors import TransientError
from epochstream.layout import DataLayout
from epochstream.settings import Settings
from workers import locks

POLL_S = 0.1


class MaintenanceBusy(TransientError):
    """Another `compact`, `rebuild` or `migrate` holds the deployment's maintenance lock."""


@dataclass(frozen=True)
class SharedLock:
    """The broker-held half of the lock, for deployments whose hosts share the log or the read model."""

    client: redis.Redis
    key: str


def shared_lock_for(settings: Settings) -> SharedLock | None:
    """The broker lock `settings` call for: None where the log and the read model are this host's own."""
    if not settings.log_url and not settings.read_model_url:
        return None
    from epochstream.broker import connect_queue, mask, resolve_queue_url
    from schemas.keys import Keys

    url = resolve_queue_url(settings)
    client = connect_queue(url)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise MaintenanceBusy(
            f"the log or the read model is shared between hosts, and the lock that keeps their maintenance "
            f"apart lives on the queue broker {mask(url)}, which does not answer ({exc}); nothing was done. "
            "Retry when the broker is up") from None
    return SharedLock(client, Keys(settings.namespace, settings.partitions).maintenance)


def _describe(info: dict, unknown: str) -> str:
    """A holder in words, from what it wrote of itself (the file's JSON; on the broker, with its host)."""
    if not info:
        return unknown
    where = f" on {info['host']}" if "host" in info else ""
    return f"`{info.get('what', '?')}`{where} (pid {info.get('pid', '?')}, since {info.get('since', '?')})"


def holder(layout: DataLayout) -> str:
    """Who holds (or last held) the lock, in words, from what the holder wrote into the file."""
    try:
        info = json.loads(layout.maintenance_lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    return _describe(info, "another process")


def _holding(shared: SharedLock) -> dict:
    """What the broker lock's holder wrote of itself ({} if free, or not written by this code)."""
    held = locks.holder_of(shared.client, shared.key)
    try:
        return json.loads(held.id) if held is not None and held.kind == "maintenance" else {}
    except ValueError:
        return {}


def _release_if_dead_here(shared: SharedLock) -> bool:
    """Free the broker lock at once if its holder was a process of this host that is gone (SIGKILLed): no need
    to wait out its TTL. Compare-and-delete, so a lock taken meanwhile by another is left alone."""
    info = _holding(shared)
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
        return False  # alive
    except ProcessLookupError:
        pass
    except PermissionError:
        return False  # alive, another user's
    return bool(locks.release(shared.client, shared.key, locks.Holder("maintenance", json.dumps(info))))


def _busy(who: str, where: str, what: str) -> MaintenanceBusy:
    return MaintenanceBusy(f"{who} is maintaining {where}; {what} did nothing. Retry when it is done, or pass "
                           "--wait SECONDS to queue behind it")


@contextlib.contextmanager
def maintenance_lock(layout: DataLayout, what: str, wait_s: float = 0.0,
                     shared: SharedLock | None = None) -> Iterator[None]:
    """Hold the lock for `what` ("compact", "rebuild", "migrate"); wait up to `wait_s` for it, else
    MaintenanceBusy. `shared` (`shared_lock_for`): also hold it on the broker, for every host at once; the
    lock closes its client when done."""
    layout.root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    fd = os.open(layout.maintenance_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(holder(layout), f"{layout.root} ({layout.maintenance_lock} is locked)", what) from None
                time.sleep(POLL_S)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        info = {"what": what, "pid": os.getpid(), "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        if shared is None:
            yield
            return
        # `hold` unique: two holds of one process (a test, a migrate's rebuild) are two holders
        me = locks.Holder("maintenance", json.dumps({**info, "host": socket.gethostname(),
                                                     "hold": uuid.uuid4().hex[:8]}))
        while not locks.take(shared.client, shared.key, me):
            if _release_if_dead_here(shared):
                continue
            if time.monotonic() >= deadline:
                raise _busy(_describe(_holding(shared), "another host"),
                            f"the shared deployment (lock {shared.key} on the queue broker)", what)
            time.sleep(POLL_S)
        try:
            with locks.Heartbeat(shared.client, [shared.key], me):
                yield
        finally:
            with contextlib.suppress(redis.RedisError):  # unreleased, it lapses within the TTL
                locks.release(shared.client, shared.key, me)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
        if shared is not None:
            shared.client.close()
