"""Turns: a drain job goes on with the drains waiting in the queue, in the same work horse, exactly once each."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from rq.job import Job

from producer import Publisher, start_run
from schemas.keys import Keys, partition_of
from tests.conftest import ROOT, settings_env
from tests.processes import stop_processes
from tests.readmodel import epoch_numbers
from tests.workers.helpers import publish_runs
from workers import locks
from workers.drain import drain
from workers.scheduling import drain_queue, enqueue_compaction, enqueue_drain, run_drain_and_release
from workers.turns import _pace, adopt_waiting, drain_job_id, queued_at
from workers.turns import partition_of as partition_of_job

WORKER = "from epochstream.cli import main; main()"


def test_only_this_namespaces_drain_ids_name_a_partition():
    assert partition_of_job(drain_job_id("ns-a", 3, "abc123"), "ns-a", 8) == 3
    assert partition_of_job(drain_job_id("ns-a", 3, "abc123"), "ns", 8) is None  # another namespace's prefix
    assert partition_of_job(drain_job_id("ns", 9, "abc123"), "ns", 8) is None  # a partition this one lacks
    assert partition_of_job("6f1c0d2e-compaction-job", "ns", 8) is None
    assert partition_of_job("drain-ns-x-abc", "ns", 8) is None
    assert queued_at(drain_job_id("ns", 2, "abc123", queued_ms=1_700_000_000_123)) == 1_700_000_000.123
    assert queued_at("6f1c0d2e-compaction-job") is None


def test_a_turn_stamped_by_a_clock_running_ahead_waits_no_longer_than_the_window():
    ahead = drain_job_id("ns", 2, "abc123", queued_ms=int((time.time() + 3600) * 1000))
    started = time.monotonic()
    _pace(ahead, 0.05, time.monotonic() + 30)
    assert time.monotonic() - started < 5  # an hour ahead: without the cap it would sleep to the deadline


def test_adopting_takes_the_oldest_waiting_drain_exactly_once(settings, redis_client):
    settings = settings.model_copy(update={"compact_every_s": 60.0})
    keys = Keys(settings.namespace, settings.partitions)
    assert enqueue_compaction(redis_client, settings) is not None  # not a drain: never adopted
    jobs = [enqueue_drain(redis_client, settings, settings.redis_url, p) for p in range(settings.partitions)]
    queue = drain_queue(redis_client, settings)
    taken: list[tuple[int, str]] = []

    def adopter() -> None:
        while (got := adopt_waiting(redis_client, keys, settings.namespace)) is not None:
            taken.append(got)

    threads = [threading.Thread(target=adopter) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(taken) == sorted((p, job.id) for p, job in enumerate(jobs))  # each once, whoever took it
    assert len(queue) == 1  # the compaction is left for a worker
    for partition, job_id in taken:
        assert not Job.exists(job_id, connection=redis_client)  # nobody runs it again
        assert locks.holder_of(redis_client, keys.drain_lock(partition)) == locks.Holder("drain", job_id)


def test_one_job_drains_every_waiting_partition_and_releases_their_locks(settings, redis_client):
    settings = settings.model_copy(update={"drain_max_s": 20.0, "drain_window_ms": 0})
    keys = Keys(settings.namespace, settings.partitions)
    runs = publish_runs(settings, runs=12, epochs=4)
    busy = sorted({partition_of(r, settings.partitions) for r in runs})
    assert len(busy) > 2
    jobs = [enqueue_drain(redis_client, settings, settings.redis_url, p) for p in busy]
    queue = drain_queue(redis_client, settings)
    first = jobs[0]
    assert redis_client.lrem(queue.key, 1, first.id) == 1  # what rq's dequeue does before it runs the job
    result = run_drain_and_release(*first.args)
    assert result["partition"] == busy[0] and result["turns"] == len(busy) - 1
    assert len(queue) == 0
    assert all(redis_client.get(keys.drain_lock(p)) is None for p in range(settings.partitions))
    for run_id in runs:
        assert epoch_numbers(settings, run_id) == [0, 1, 2, 3]
    assert all(redis_client.xpending(keys.stream(p), keys.group)["pending"] == 0 for p in busy)


def test_a_warm_shutdown_ends_a_drain_on_a_trickle_within_seconds_not_at_its_deadline(settings, redis_client,
                                                                                      tmp_path):
    """Nobody waits for the only partition's worker, so its drain keeps the trickle; SIGTERM asks rq for a warm
    shutdown, which waits for the job: the job sees the request and ends, nothing lost or doubled."""
    settings = settings.model_copy(update={"partitions": 1, "drain_max_s": 120.0, "drain_window_ms": 100})
    keys = Keys(settings.namespace, 1)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "worker", "--interval", "0.2"], cwd=ROOT,
                              env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
    publisher = Publisher(settings)
    try:
        with start_run(project="t", name="trickle", run_id="trickle", publisher=publisher) as run:
            run.log_epoch(0, {"train/loss": 1.0})
            started = time.monotonic()
            while not epoch_numbers(settings, "trickle") and time.monotonic() - started < 60:
                time.sleep(0.1)  # the worker starts (imports, first job)
            epoch = 0
            while epoch < 400 and worker.poll() is None:  # bounded: 20 s of one epoch each 50 ms
                epoch += 1
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)})
                time.sleep(0.05)
                if epoch == 20:
                    worker.terminate()  # the trickle goes on: only the request can end the drain
            assert publisher.flush(30)
        assert worker.poll() is not None, "the worker's drain went on after its warm shutdown was requested"
    finally:
        publisher.close()
        stop_processes([worker])
        log.close()
    drain(redis_client, settings, 0, max_seconds=30)  # what came after the shutdown
    assert epoch_numbers(settings, "trickle") == list(range(epoch + 1))
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == 0
