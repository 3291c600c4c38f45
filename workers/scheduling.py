"""Keeping drains flowing without a human: at most one queued-or-running drain per partition with a backlog.

The lock `drain-lock:{p}` is taken (SET NX) before a drain is queued and released when it ends; the drain
refreshes its TTL every batch, so the lock of a worker that died frees the partition after LOCK_TTL_S at
most. The scheduler loop also trims the streams.

Two clients where the streams are on a Redis Cluster: `client` for the streams (backlog, trimming), `queue`
for RQ and the locks (`EPOCHSTREAM_QUEUE_URL`, a standalone Redis; by default the same server as `client`).
Drain jobs learn the queue broker from `settings.queue_url`, resolved by the entry point.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from epochstream.settings import Settings
from schemas.keys import Keys
from workers.drain import DrainResult, drain_partition, ensure_group
from workers.trimming import trim_stream

log = logging.getLogger("epochstream.scheduler")

LOCK_TTL_S = 120  # a drain that dies without releasing its lock frees the partition after this long


def drain_queue(client: redis.Redis, settings: Settings) -> Queue:
    return Queue(Keys(settings.namespace, settings.partitions).drain_queue, connection=client)


# Delete the lock only if it still names the job we found dead (another scheduler may have moved on).
_RELEASE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
DEAD_STATUSES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED}
GRACE_S = 10  # a lock set this recently may name a job being enqueued right now


def enqueue_drain(client: redis.Redis, settings: Settings, redis_url: str, partition: int):
    """Queue a drain of `partition` unless one is already queued or running; returns the job or None."""
    keys = Keys(settings.namespace, settings.partitions)
    lock = keys.drain_lock(partition)
    job_id = f"drain-{settings.namespace}-{partition}-{uuid.uuid4().hex[:12]}"
    if not client.set(lock, job_id.encode(), nx=True, ex=LOCK_TTL_S):
        return None
    return drain_queue(client, settings).enqueue(
        run_drain_and_release, settings.model_dump_json(), redis_url, partition, job_id, job_id=job_id,
        job_timeout=int(settings.drain_max_s * 4) + 60, result_ttl=60, failure_ttl=24 * 3600,
    )


def release_if_dead(client: redis.Redis, settings: Settings, partition: int) -> bool:
    """Free a partition whose drain job died without releasing its lock (its work horse was killed)."""
    lock = Keys(settings.namespace, settings.partitions).drain_lock(partition)
    holder = client.get(lock)
    if holder is None or not holder.startswith(b"drain-"):
        return False  # free, or held by `epochstream rebuild`
    try:
        status = Job.fetch(holder.decode(), connection=client).get_status(refresh=True)
    except NoSuchJobError:
        status = None
        if client.ttl(lock) > LOCK_TTL_S - GRACE_S:
            return False
    if status is not None and status not in DEAD_STATUSES:
        return False
    return bool(client.eval(_RELEASE_IF, 1, lock, holder))


def run_drain_and_release(settings_json: str, redis_url: str, partition: int, holder: str) -> dict:
    """Drain `partition` if the lock still names this job (`holder`), or is free and can be taken.

    The lock may have expired while the job waited in the queue, and then another drain or `epochstream
    rebuild` may hold it: this job then does nothing, since two writers of a partition's projections would
    lose each other's updates. It releases the lock only while the lock still names it.
    """
    settings = Settings.model_validate_json(settings_json)
    lock = Keys(settings.namespace, settings.partitions).drain_lock(partition)
    from epochstream.broker import connect, connect_queue

    client = connect_queue(settings.queue_url) if settings.queue_url else connect(redis_url)
    try:
        if not (client.set(lock, holder.encode(), nx=True, ex=LOCK_TTL_S) or client.get(lock) == holder.encode()):
            return asdict(DrainResult(partition))
        return drain_partition(settings_json, redis_url, partition, lock_key=lock)
    finally:
        client.eval(_RELEASE_IF, 1, lock, holder)  # a drain that dies here is freed by release_if_dead
        client.close()


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
        release_if_dead(queue, settings, partition)
        if enqueue_drain(queue, settings, redis_url, partition):
            queued += 1
    return queued


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
    """Schedule drains every `interval` seconds, trim every `trim_every`, and refresh the read-model snapshot
    for SQL every SNAPSHOT_EVERY_S (or 20 times what the last one took, if that is longer: a snapshot of
    100,000 runs is not taken every few seconds), until `stop()` is true."""
    from workers.catalog import refresh_snapshot

    last_trim = last_snapshot = 0.0
    snapshot_every = SNAPSHOT_EVERY_S
    while stop is None or not stop():
        try:
            schedule_once(client, settings, redis_url, queue)
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
