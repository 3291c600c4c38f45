"""The partition locks on a real Redis: compare-and-set on the holder everywhere, the TTL rule, pause_all."""

from __future__ import annotations

import threading
import time

import pytest
from rq import Worker

from schemas.keys import Keys
from tests.workers.helpers import publish_runs
from workers import locks
from workers.scheduling import drain_queue, enqueue_drain, schedule_once

DRAIN, OTHER, REBUILD = locks.Holder("drain", "job-1"), locks.Holder("drain", "job-2"), locks.Holder("rebuild", "h-1")


def test_holders_round_trip_and_foreign_values_name_nobody():
    for holder in (DRAIN, REBUILD, locks.Holder("drain", "with:colons")):
        assert locks.Holder.parse(holder.encode()) == holder
    assert [locks.Holder.parse(v) for v in (None, b"rebuild", b"drain-x", b"owner:1")] == [None] * 4


def test_only_the_holder_refreshes_or_releases(settings, redis_client):
    key = Keys(settings.namespace, settings.partitions).drain_lock(0)
    assert locks.take(redis_client, key, DRAIN) is True
    assert locks.take(redis_client, key, DRAIN) is True  # already ours: kept
    assert locks.take(redis_client, key, OTHER) is False
    redis_client.pexpire(key, 1000)
    assert locks.refresh(redis_client, key, OTHER) is False
    assert redis_client.pttl(key) <= 1000  # a paused worker cannot extend someone else's lock
    assert locks.release(redis_client, key, OTHER) is False
    assert locks.holder_of(redis_client, key) == DRAIN
    assert locks.refresh(redis_client, key, DRAIN) is True
    assert redis_client.pttl(key) > 1000
    pipe = redis_client.pipeline(transaction=False)
    assert locks.release(redis_client, key, DRAIN, pipeline=pipe) is None  # goes in the caller's round trip
    assert redis_client.exists(key) == 1
    assert pipe.execute() == [1]
    assert redis_client.exists(key) == 0
    assert locks.refresh(redis_client, key, DRAIN) is False  # gone: refresh does not bring it back


def test_heartbeat_keeps_a_lock_past_its_ttl_and_notices_a_takeover(settings, redis_client):
    key = Keys(settings.namespace, settings.partitions).drain_lock(1)
    assert locks.take(redis_client, key, DRAIN, ttl_s=0.5)
    with locks.Heartbeat(redis_client, [key], DRAIN, every_s=0.1) as beat:
        time.sleep(1.0)
        assert locks.holder_of(redis_client, key) == DRAIN and not beat.lost.is_set()
        redis_client.set(key, OTHER.encode(), px=60_000)  # taken over while we were (say) stopped
        assert beat.lost.wait(5)
    assert locks.holder_of(redis_client, key) == OTHER
    assert redis_client.pttl(key) > 50_000  # not extended, not shortened, not deleted


def test_pause_all_waits_for_a_drain_then_holds_every_partition_until_done(settings, redis_client):
    keys = Keys(settings.namespace, settings.partitions)
    all_locks = [keys.drain_lock(p) for p in range(settings.partitions)]
    assert locks.take(redis_client, all_locks[2], DRAIN)
    with pytest.raises(locks.LocksBusy, match="still held by"), \
            locks.pause_all(redis_client, all_locks, REBUILD, wait_s=0.5):
        pass
    assert [locks.holder_of(redis_client, k) for k in all_locks] == [None, None, DRAIN, None]  # let go of all
    locks.release(redis_client, all_locks[2], DRAIN)
    with locks.pause_all(redis_client, all_locks, REBUILD, wait_s=5) as held:
        assert held == all_locks
        assert {locks.holder_of(redis_client, k) for k in all_locks} == {REBUILD}
        assert enqueue_drain(redis_client, settings, settings.redis_url, 0) is None  # no drain meanwhile
    assert redis_client.exists(*all_locks) == 0


def test_while_a_rebuild_waits_for_a_drain_no_new_drain_takes_a_free_partition(settings, redis_client):
    """Drains queue their own next turn as they end: without the wanted flag, a busy partition's lock would be
    taken again before the waiting rebuild could look."""
    keys = Keys(settings.namespace, settings.partitions)
    all_locks = [keys.drain_lock(p) for p in range(settings.partitions)]
    assert locks.take(redis_client, all_locks[0], DRAIN)
    outcome: list[object] = []

    def rebuild() -> None:
        with locks.pause_all(redis_client, all_locks, REBUILD, wait_s=10, wanted_key=keys.pause_wanted) as held:
            outcome.append(held)

    waiter = threading.Thread(target=rebuild)
    waiter.start()
    try:
        deadline = time.monotonic() + 5
        while not redis_client.exists(keys.pause_wanted) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert enqueue_drain(redis_client, settings, settings.redis_url, 1) is None  # partition 1 is free
        assert locks.holder_of(redis_client, all_locks[1]) is None
    finally:
        locks.release(redis_client, all_locks[0], DRAIN)
        waiter.join(15)
    assert outcome == [all_locks]
    assert not redis_client.exists(keys.pause_wanted)
    assert enqueue_drain(redis_client, settings, settings.redis_url, 1) is not None  # drains go on after it


def test_scheduler_keeps_a_queued_drains_lock_and_frees_an_ended_ones(settings, redis_client):
    publish_runs(settings, runs=1, epochs=2)
    keys = Keys(settings.namespace, settings.partitions)
    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    (lock,) = [keys.drain_lock(p) for p in range(settings.partitions) if redis_client.exists(keys.drain_lock(p))]
    holder = locks.holder_of(redis_client, lock)
    redis_client.pexpire(lock, 500)
    assert schedule_once(redis_client, settings, settings.redis_url) == 0
    assert redis_client.pttl(lock) > 500  # its job is queued: the scheduler refreshed its lock
    assert locks.release_if_dead(redis_client, lock) is False
    locks.release(redis_client, lock, holder)
    Worker([drain_queue(redis_client, settings)], connection=redis_client).work(burst=True)  # lock free: job takes it
    redis_client.set(lock, holder.encode())  # as if the job had finished without releasing it
    assert locks.release_if_dead(redis_client, lock) is True
