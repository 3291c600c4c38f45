"""The scheduler: one drain per partition with a backlog, never two; trimming after the drains."""

from __future__ import annotations

from rq import Worker

from schemas.keys import Keys, partition_of
from tests.workers.helpers import publish_runs
from workers import locks
from workers.scheduling import drain_queue, schedule_once, trim_all


def test_one_drain_per_backlogged_partition_never_two(settings, redis_client):
    runs = publish_runs(settings, runs=2, epochs=5)
    busy = {partition_of(r, settings.partitions) for r in runs}
    queue = drain_queue(redis_client, settings)
    assert schedule_once(redis_client, settings, settings.redis_url) == len(busy)
    assert schedule_once(redis_client, settings, settings.redis_url) == 0  # already queued
    assert len(queue) == len(busy)
    Worker([queue], connection=redis_client).work(burst=True)
    assert schedule_once(redis_client, settings, settings.redis_url) == 0  # no backlog left
    keys = Keys(settings.namespace, settings.partitions)
    assert all(redis_client.get(keys.drain_lock(p)) is None for p in range(settings.partitions))
    assert sum(redis_client.xlen(s) for s in keys.all_streams()) == 14
    assert trim_all(redis_client, settings) == 14
    publish_runs(settings, runs=1, epochs=3, prefix="more")
    assert schedule_once(redis_client, settings, settings.redis_url) == 1


def test_pending_entries_count_as_backlog_only_once_reclaimable(settings, redis_client):
    from workers.drain import ensure_group
    from workers.scheduling import has_backlog

    keys = Keys(settings.namespace, settings.partitions)
    stream = keys.stream(0)
    ensure_group(redis_client, stream, keys.group)
    redis_client.xadd(stream, {b"e": b"{}"})
    assert has_backlog(redis_client, stream, keys.group, 60_000)  # undelivered
    redis_client.xreadgroup(keys.group, "alive-or-dead", {stream: ">"})
    assert not has_backlog(redis_client, stream, keys.group, 60_000)  # its consumer may still be working
    assert has_backlog(redis_client, stream, keys.group, 0)  # idle long enough: a drain would reclaim it


def test_a_queued_drain_whose_lock_was_taken_meanwhile_does_nothing(settings, redis_client):
    # The lock expired while the job waited in the queue, and `epochstream rebuild` (or a newer drain) took it:
    # the job must neither drain beside it nor delete its lock.
    runs = publish_runs(settings, runs=1, epochs=3)
    partition = partition_of(runs[0], settings.partitions)
    keys = Keys(settings.namespace, settings.partitions)
    queue = drain_queue(redis_client, settings)
    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    rebuilding = locks.Holder("rebuild", "elsewhere-1")
    lock = keys.drain_lock(partition)
    redis_client.set(lock, rebuilding.encode())
    Worker([queue], connection=redis_client).work(burst=True)
    assert locks.holder_of(redis_client, lock) == rebuilding
    assert redis_client.xinfo_groups(keys.stream(partition))[0]["lag"] == 5  # nothing read
    redis_client.delete(keys.drain_lock(partition))
    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    Worker([queue], connection=redis_client).work(burst=True)
    assert redis_client.xinfo_groups(keys.stream(partition))[0]["lag"] == 0
    assert redis_client.get(keys.drain_lock(partition)) is None
