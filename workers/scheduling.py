"""Keeping drains flowing without a human: at most one queued-or-running drain per partition with a backlog.

The lock `drain-lock:{p}` (`workers.locks`) is taken before a drain is queued and released when it ends. Its
TTL rule: while the job waits in the queue the scheduler refreshes it every pass; once it runs, the job's own
heartbeat does. So the lock of a job that died (its work horse killed, its worker cut off from the broker)
frees the partition within `locks.TTL_S`, and one that failed or finished without releasing is freed at the
next pass. The scheduler loop also trims the streams.

Two clients where the streams are on a Redis Cluster: `client` for the streams (backlog, trimming), `queue`
for RQ and the locks (`EPOCHSTREAM_QUEUE_URL`, a standalone Redis; by default the same server as `client`).
Drain jobs learn the queue broker from `settings.queue_url`, resolved by the entry point.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import asdict

import redis
from rq import Queue

from epochstream.broker import connect, connect_queue
from epochstream.settings import Settings
from schemas.keys import Keys
from workers import locks
from workers.drain import DrainResult, drain, ensure_group
from workers.trimming import trim_stream
from workers.turns import Yielding, drain_job_id, take_turns

log = logging.getLogger("epochstream.scheduler")


def drain_queue(client: redis.Redis, settings: Settings) -> Queue:
    return Queue(Keys(settings.namespace, settings.partitions).drain_queue, connection=client)


def enqueue_drain(client: redis.Redis, settings: Settings, redis_url: str, partition: int):
    """Queue a drain of `partition` unless one is already queued or running, or `epochstream rebuild` waits
    to pause the drains; returns the job or None."""
    keys = Keys(settings.namespace, settings.partitions)
    if client.exists(keys.pause_wanted):
        return None
    lock = keys.drain_lock(partition)
    job_id = drain_job_id(settings.namespace, partition, uuid.uuid4().hex[:12])
    if not locks.take(client, lock, locks.Holder("drain", job_id)):
        return None
    return drain_queue(client, settings).enqueue(
        run_drain_and_release, settings.model_dump_json(), redis_url, partition, job_id, job_id=job_id,
        job_timeout=int(settings.drain_max_s * 4) + 60, result_ttl=60, failure_ttl=24 * 3600,
    )


def keep_or_free(client: redis.Redis, settings: Settings, partition: int) -> None:
    """The scheduler's part of the TTL rule: refresh the lock of a drain still waiting in the queue, free the
    lock of one that ended without releasing it; a running one heartbeats by itself. Waiting means in the
    queue's list, not RQ's status: a job dequeued just as the broker died stays "queued" but is never run."""
    lock = Keys(settings.namespace, settings.partitions).drain_lock(partition)
    holder = locks.holder_of(client, lock)
    if holder is None or holder.kind != "drain":
        return
    if client.lpos(drain_queue(client, settings).key, holder.id) is not None:
        locks.refresh(client, lock, holder)
    else:
        locks.release_if_dead(client, lock, holder)


def run_drain_and_release(settings_json: str, redis_url: str, partition: int, job_id: str) -> dict:
    """RQ job: drain `partition` if the lock still names this job, or is free and can be taken; then, while
    other drains wait for a worker, take their turns in this work horse (`workers.turns`) until
    `drain_max_s` has passed. Returns the first partition's result, with the number of turns taken after it.

    The lock may have expired while the job waited in the queue, and then another drain or `epochstream
    rebuild` may hold it: this job then does nothing for that partition, since two writers of a partition's
    projections would lose each other's updates. It heartbeats the lock while it drains and releases it only
    while it still names it. One Settings and one client for the whole job.
    """
    settings = Settings.model_validate_json(settings_json)
    client = connect(redis_url)
    queue = connect_queue(settings.queue_url) if settings.queue_url else client
    deadline = time.monotonic() + settings.drain_max_s
    keys = Keys(settings.namespace, settings.partitions)

    def turn(turn_partition: int, turn_job_id: str, turn_deadline: float) -> tuple[DrainResult, bool]:
        result = drain_turn(client, queue, settings, redis_url, turn_partition, turn_job_id, turn_deadline,
                            yielding)
        return result, not result.refused and result.stalled is None

    try:
        yielding = Yielding(queue, keys)
        first, go_on = turn(partition, job_id, deadline)
        turns = 0
        if go_on:
            turns = take_turns(queue, keys, settings.namespace, deadline, lambda p, j, d: turn(p, j, d)[1],
                               yielding, settings.drain_window_ms / 1000)
        return {**asdict(first), "turns": turns}
    finally:
        client.close()
        if queue is not client:
            queue.close()


def drain_turn(client: redis.Redis, queue: redis.Redis, settings: Settings, redis_url: str, partition: int,
               job_id: str, deadline: float, yielding: Yielding | None = None) -> DrainResult:
    """One partition's turn under the lock that names `job_id`; queues its next turn when it is still behind."""
    lock, holder = Keys(settings.namespace, settings.partitions).drain_lock(partition), locks.Holder("drain", job_id)
    if not locks.take(queue, lock, holder):
        return DrainResult(partition)
    try:
        with locks.Heartbeat(queue, [lock], holder) as heartbeat:
            result = drain(client, settings, partition, heartbeat=heartbeat, linger=True, queue=queue,
                           max_seconds=max(0.0, deadline - time.monotonic()), must_yield=yielding)
    finally:
        locks.release(queue, lock, holder)  # a drain that dies before this is freed by the TTL rule
    if result.batches and not result.refused and result.stalled is None:
        requeue_if_behind(client, queue, settings, redis_url, partition)
    return result


def requeue_if_behind(client: redis.Redis, queue: redis.Redis, settings: Settings, redis_url: str,
                      partition: int) -> None:
    """A drain that yielded its worker to waiting partitions queues its partition's next turn itself when
    entries already wait, behind the others: otherwise they would wait for the scheduler's next pass too (up
    to its interval), on every turn. Best effort: the scheduler's pass catches what this misses."""
    keys = Keys(settings.namespace, settings.partitions)
    with contextlib.suppress(*BROKER_AWAY):
        if has_backlog(client, keys.stream(partition), keys.group, settings.claim_idle_ms):
            enqueue_drain(queue, settings, redis_url, partition)


def has_backlog(client: redis.Redis, stream: str, group: str, claim_idle_ms: int = 0) -> bool:
    """Undelivered entries (lag), or pending ones idle long enough to reclaim (a consumer died mid-batch)."""
    for info in client.xinfo_groups(stream):
        if info["name"].decode() != group:
            continue
        lag = info.get("lag")
        if (lag or 0) > 0:
            return True
        if info["pending"] and client.xpending_range(stream, group, "-", "+", 1, idle=claim_idle_ms):
            return True
        if lag == 0:
            return False
        # lag is None when Redis cannot tell (after a trim or deletion): look for an unread entry.
        last = info["last-delivered-id"].decode()
        return bool(client.xrange(stream, min=f"({last}", count=1))
    return client.xlen(stream) > 0


def schedule_once(client: redis.Redis, settings: Settings, redis_url: str, queue: redis.Redis | None = None) -> int:
    """Queue one drain for every partition with a backlog and none queued or running; returns how many."""
    queue = client if queue is None else queue
    keys = Keys(settings.namespace, settings.partitions)
    queued = 0
    for partition in range(settings.partitions):
        stream = keys.stream(partition)
        ensure_group(client, stream, keys.group)
        if not has_backlog(client, stream, keys.group, settings.claim_idle_ms):
            continue
        keep_or_free(queue, settings, partition)
        if enqueue_drain(queue, settings, redis_url, partition):
            queued += 1
    return queued


COMPACTION_TIMEOUT_S = 3600  # a first compaction of a long log merges many files


def enqueue_compaction(queue: redis.Redis, settings: Settings):
    """Once per `compact_every_s` across all schedulers: queue a compaction of the log on the drain queue, so a
    worker runs it (isolated in its work horse) and drains never stop for it; returns the job or None. Left
    alone, a busy deployment writes a few small segments per drained batch: tens of thousands an hour, each a
    file every SQL view opens and every drain's catch-up lists."""
    if settings.compact_every_s <= 0:
        return None
    keys = Keys(settings.namespace, settings.partitions)
    if not queue.set(keys.compaction_due, b"queued", nx=True, ex=max(1, int(settings.compact_every_s))):
        return None
    return drain_queue(queue, settings).enqueue(
        run_compaction, settings.model_dump_json(), job_timeout=COMPACTION_TIMEOUT_S, result_ttl=600,
        failure_ttl=24 * 3600,
    )


def run_compaction(settings_json: str) -> dict:
    """RQ job: compact segments older than `compact_min_age_s`; skipped while a `compact` or `rebuild` runs."""
    from workers.compaction import compact
    from workers.maintenance_lock import MaintenanceBusy

    settings = Settings.model_validate_json(settings_json)
    try:
        results = compact(settings, min_age_s=settings.compact_min_age_s)
    except MaintenanceBusy as exc:
        return {"skipped": str(exc)}
    return {"files_in": sum(r.files_in for r in results), "files_out": sum(r.files_out for r in results)}


def trim_all(client: redis.Redis, settings: Settings) -> int:
    keys = Keys(settings.namespace, settings.partitions)
    return sum(trim_stream(client, stream) for stream in keys.all_streams())


# A broker (or a cluster's shard) that does not answer for now: the loop carries on. RedisClusterException is
# no RedisError (a slot no node serves while a master is away).
BROKER_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
               redis.exceptions.TryAgainError, redis.exceptions.RedisClusterException)
SNAPSHOT_EVERY_S = 10.0  # the `runs`/`trends` SQL views are at most about this old for analysts' own sessions


def run_scheduler(client: redis.Redis, settings: Settings, redis_url: str, interval: float = 1.0,
                  trim_every: float = 30.0, stop=None, queue: redis.Redis | None = None) -> None:
    """Schedule drains every `interval` seconds, trim every `trim_every`, queue a compaction every
    `settings.compact_every_s` (`enqueue_compaction`), and refresh the read-model snapshot
    for SQL every SNAPSHOT_EVERY_S (or 20 times what the last one took, if that is longer: a snapshot of
    100,000 runs is not taken every few seconds), until `stop()` is true."""
    from workers.catalog import refresh_snapshot

    last_trim = last_snapshot = 0.0
    last_compaction = time.monotonic()  # the first one a period after start: a restart loop never compacts
    snapshot_every = SNAPSHOT_EVERY_S
    while stop is None or not stop():
        try:
            schedule_once(client, settings, redis_url, queue)
            if settings.compact_every_s > 0 and time.monotonic() - last_compaction >= settings.compact_every_s:
                enqueue_compaction(client if queue is None else queue, settings)
                last_compaction = time.monotonic()
            if time.monotonic() - last_trim >= trim_every:
                trim_all(client, settings)
                last_trim = time.monotonic()
        except BROKER_AWAY as exc:
            log.warning("scheduler: broker unavailable, retrying: %s", exc)
        if time.monotonic() - last_snapshot >= snapshot_every:
            started = time.monotonic()
            try:
                refresh_snapshot(settings)
            except Exception as exc:  # noqa: BLE001 - SQL freshness must never stop the scheduling
                log.warning("scheduler: could not refresh the SQL snapshot of the read model: %r", exc)
            last_snapshot = time.monotonic()
            snapshot_every = max(SNAPSHOT_EVERY_S, 20 * (last_snapshot - started))
        time.sleep(interval)
