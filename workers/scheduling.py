"""Queueing drain jobs on RQ: at most one queued-or-running drain per partition."""

from __future__ import annotations

import redis
from rq import Queue

from epochstream.settings import Settings
from schemas.keys import Keys
from workers.drain import drain_partition

LOCK_TTL_S = 300  # a drain that dies without releasing its lock frees the partition after this long


def drain_queue(client: redis.Redis, settings: Settings) -> Queue:
    return Queue(Keys(settings.namespace, settings.partitions).drain_queue, connection=client)


def enqueue_drain(client: redis.Redis, settings: Settings, redis_url: str, partition: int):
    """Queue a drain of `partition` unless one is already queued or running; returns the job or None."""
    keys = Keys(settings.namespace, settings.partitions)
    if not client.set(keys.drain_lock(partition), b"1", nx=True, ex=LOCK_TTL_S):
        return None
    return drain_queue(client, settings).enqueue(
        run_drain_and_release, settings.model_dump_json(), redis_url, partition,
        job_timeout=LOCK_TTL_S, result_ttl=60, failure_ttl=24 * 3600,
    )


def run_drain_and_release(settings_json: str, redis_url: str, partition: int) -> dict:
    settings = Settings.model_validate_json(settings_json)
    keys = Keys(settings.namespace, settings.partitions)
    from epochstream.broker import connect

    client = connect(redis_url)
    try:
        return drain_partition(settings_json, redis_url, partition)
    finally:
        client.delete(keys.drain_lock(partition))
        client.close()
