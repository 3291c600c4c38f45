"""The partition locks: who may write a partition's projections right now (one drain, or `epochstream rebuild`).

One TTL rule: a lock lives TTL_S past the last time its holder said it is alive. A running drain and a rebuild
say so from a `Heartbeat` thread every HEARTBEAT_S; the scheduler says so for a drain still waiting in the
queue. So a holder that died (SIGKILL, a worker that lost its broker, a job RQ still lists as started) frees
the partition within TTL_S, and one that is paused (SIGSTOP) loses it the same way: its late commit is then
refused by the read model's fence token (`workers.drain.take_fence`), never written over newer state.

Every change is compare-and-set on the holder (Lua, one round trip): nobody extends or deletes a lock they do
not hold. Each function takes an optional `pipeline`, as rq's registries do, to go in a caller's round trip
(it then returns None; the pipeline's `execute()` has the answer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import redis

from epochstream.errors import TransientError

log = logging.getLogger("epochstream.locks")

TTL_S = 6.0  # a lock its holder stopped refreshing frees the partition after this long
HEARTBEAT_S = 1.0  # holders refresh this often: several chances before TTL_S on a loaded host

# take: set if free, or refresh if already ours. refresh: compare-and-expire. release: compare-and-delete.
_TAKE = ("local v = redis.call('get', KEYS[1]) "
         "if v == false then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
         "if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end return 0")
_REFRESH = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
            "return 0")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

Kind = Literal["drain", "rebuild", "maintenance"]
KINDS: tuple[Kind, ...] = ("drain", "rebuild", "maintenance")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: a drain job (its RQ job id) or a rebuild (its host and pid)."""

    kind: Kind
    id: str

    def encode(self) -> bytes:
        return f"{self.kind}:{self.id}".encode()

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Holder | None:
        """The holder a lock's value names; None for a free lock or a value this code did not write."""
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        kind, sep, ident = text.partition(":")
        return cls(kind, ident) if sep and kind in KINDS else None  # type: ignore[arg-type]


def _ms(ttl_s: float) -> int:
    return int(ttl_s * 1000)


def take(client: redis.Redis, key: str, holder: Holder, ttl_s: float = TTL_S, pipeline=None) -> bool | None:
    """Take the lock if it is free, or keep it if `holder` has it already; False if someone else does."""
    target = pipeline if pipeline is not None else client
    reply = target.eval(_TAKE, 1, key, holder.encode(), _ms(ttl_s))
    return None if pipeline is not None else bool(reply)


def refresh(client: redis.Redis, key: str, holder: Holder, ttl_s: float = TTL_S, pipeline=None) -> bool | None:
    """Extend the lock by `ttl_s` only while it still names `holder` (compare-and-expire)."""
    target = pipeline if pipeline is not None else client
    reply = target.eval(_REFRESH, 1, key, holder.encode(), _ms(ttl_s))
    return None if pipeline is not None else bool(reply)


def release(client: redis.Redis, key: str, holder: Holder, pipeline=None) -> bool | None:
    """Delete the lock only while it still names `holder` (compare-and-delete)."""
    target = pipeline if pipeline is not None else client
    reply = target.eval(_RELEASE, 1, key, holder.encode())
    return None if pipeline is not None else bool(reply)


def holder_of(client: redis.Redis, key: str) -> Holder | None:
    return Holder.parse(client.get(key))


def job_status(client: redis.Redis, holder: Holder) -> str | None:
    """The RQ status of the drain job a holder names; None if there is no such job (yet, or any more)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        return Job.fetch(holder.id, connection=client).get_status(refresh=True)
    except NoSuchJobError:
        return None


ENDED = frozenset({"failed", "stopped", "canceled", "finished"})  # rq's JobStatus values of a job that is over


def release_if_dead(client: redis.Redis, key: str, holder: Holder | None = None, pipeline=None) -> bool | None:
    """Free a partition whose drain job ended without releasing its lock (failed, stopped, finished: its work
    horse was killed). A job still queued or started is left to the TTL rule; so is a rebuild, and a job not
    found (being enqueued right now, or long gone). `holder`: who the caller just read holds it (saves a GET)."""
    holder = holder if holder is not None else holder_of(client, key)
    if holder is None or holder.kind != "drain" or job_status(client, holder) not in ENDED:
        return False
    return release(client, key, holder, pipeline=pipeline)


class Heartbeat:
    """Refresh `keys` for `holder` every HEARTBEAT_S from a thread, while the holder works.

    `lost` is set once a lock names someone else (the holder was paused or cut off past TTL_S and another took
    over): the holder should stop; whatever it still commits is refused by its fence token. A lock that merely
    expired while the broker was away is taken again if still free (the fence keeps that safe too)."""

    def __init__(self, client: redis.Redis, keys: list[str], holder: Holder, every_s: float = HEARTBEAT_S):
        self.client, self.keys, self.holder, self.every_s = client, keys, holder, every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epochstream-lock-heartbeat", daemon=True)

    def beat(self) -> None:
        for key in self.keys:
            if not refresh(self.client, key, self.holder) and not take(self.client, key, self.holder):
                if not self.lost.is_set():
                    log.warning("lock %s was taken over by %s; %s stops", key, holder_of(self.client, key),
                                self.holder)
                self.lost.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.beat()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("lock heartbeat: broker unavailable (%s); retrying", exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)


class LocksBusy(TransientError):
    """A partition stayed locked longer than the caller would wait."""

    def __init__(self, key: str, holder: Holder | None, waited_s: float):
        self.key, self.holder = key, holder
        super().__init__(f"{key} is still held by {holder} after {waited_s:.0f}s (a drain is running); retry later")


@contextmanager
def pause_all(client: redis.Redis, keys: list[str], holder: Holder, wait_s: float,
              poll_s: float = 0.2, wanted_key: str | None = None) -> Iterator[list[str]]:
    """Hold every lock in `keys` (waiting up to `wait_s` for running drains to finish), heartbeating them,
    until the block ends; then release them. Raises LocksBusy naming the first lock still held by another.
    `wanted_key` (`Keys.pause_wanted`) is set while it waits, so that no new drain takes a lock it is after."""
    held: list[str] = []
    try:
        deadline = time.monotonic() + wait_s
        for key in keys:
            while not take(client, key, holder):
                if time.monotonic() > deadline:
                    raise LocksBusy(key, holder_of(client, key), wait_s)
                if wanted_key is not None:
                    client.set(wanted_key, holder.encode(), px=_ms(TTL_S))  # lapses if this process dies
                _refresh_all(client, held, holder)  # what is held already must not lapse while we wait
                time.sleep(poll_s)
            held.append(key)
        if wanted_key is not None:
            client.delete(wanted_key)  # held now: drains wait on the locks themselves
        with Heartbeat(client, held, holder):
            yield held
    finally:
        if wanted_key is not None:
            client.delete(wanted_key)
        if held:
            pipe = client.pipeline(transaction=False)
            for key in held:
                release(client, key, holder, pipeline=pipe)
            pipe.execute()


def _refresh_all(client: redis.Redis, keys: list[str], holder: Holder) -> None:
    if keys:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            refresh(client, key, holder, pipeline=pipe)
        pipe.execute()


def release_all(client: redis.Redis, keys: list[str]) -> int:
    """Delete these locks whoever holds them: only for the owner of a broker whose workers have all stopped
    (`epochstream up` before its final drain), when nobody can be holding them any more."""
    return int(client.delete(*keys)) if keys else 0
