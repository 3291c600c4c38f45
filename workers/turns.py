"""Turns: a drain job that yields its partition goes on with a drain that waits in the queue, in the same process.

Spread load (many runs, each sending an epoch now and then) keeps every partition a little behind, so with
more partitions than workers drains queue up. A job per partition turn costs a work horse: rq forks the
worker (~170 MB mapped) and the horse sets up and exits, ~30 ms of CPU before a single entry is read, plus
the drain's own start (fence, writer, claim, catch-up). Paid on every turn of every partition, that was most
of the pipeline's CPU at a few thousand runs. Instead a job, once its partition is caught up while others
wait, takes the oldest waiting drain off the queue (LREM: exactly one taker; a worker that popped it first
wins) and drains that partition, holding its lock under the waiting job's own name, with a heartbeat, as that
job would have. Its own partition, still behind, was queued again at the back (`requeue_if_behind`), so the
partitions rotate through the long-lived horses without a fork per turn. A job stops taking turns at its
deadline (`drain_max_s`), when nothing waits, or when the broker does not answer; the adopted job's record
is deleted so nobody runs it again (its lock is then freed by its holder, or by the TTL rule if this horse
dies: `workers.locks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from rq import Queue, Worker, get_current_job
from rq.job import Job

from schemas.keys import Keys
from workers import health

LOOK_AHEAD = 16  # waiting jobs looked at per adoption: drains behind a compaction are reached too


def drain_job_id(namespace: str, partition: int, suffix: str, queued_ms: int | None = None) -> str:
    """`queued_ms`: when it was queued (ms since the epoch), for `queued_at` to pace turns without a lookup."""
    stamp = int(time.time() * 1000) if queued_ms is None else queued_ms
    return f"drain-{namespace}-{partition}-{suffix}-{stamp}"


def queued_at(job_id: str) -> float | None:
    """When a drain job was queued (seconds since the epoch), from its id; None for an id without it."""
    stamp = job_id.rpartition("-")[2]
    return int(stamp) / 1000 if stamp.isdigit() else None


def partition_of(job_id: str, namespace: str, partitions: int) -> int | None:
    """The partition a drain job of this namespace names in its id (`drain_job_id`); None for other jobs."""
    prefix = f"drain-{namespace}-"
    if not job_id.startswith(prefix):
        return None
    number, sep, _suffix = job_id[len(prefix):].partition("-")
    if not sep or not number.isdigit() or int(number) >= partitions:
        return None
    return int(number)


def adopt_waiting(queue: redis.Redis, keys: Keys, namespace: str) -> tuple[int, str] | None:
    """Take the oldest waiting drain of this namespace off the drain queue: (partition, its job id), or None.
    The job's record is deleted: nobody runs it; its lock, which names it, is now the adopter's to use."""
    queue_key = Queue(keys.drain_queue, connection=queue).key
    for raw in queue.lrange(queue_key, 0, LOOK_AHEAD - 1):
        job_id = raw.decode()
        partition = partition_of(job_id, namespace, keys.partitions)
        if partition is None or not queue.lrem(queue_key, 1, job_id):
            continue  # not a drain, or a worker took it first
        queue.delete(Job.key_for(job_id))  # a queued job is in no registry: its record is all there is
        return partition, job_id
    return None


class Yielding:
    """Whether a drain job should give its worker back: another job waits in the queue, or the worker was
    asked to stop (a warm shutdown waits for the running job: with turns, that could be `drain_max_s`). One
    round trip."""

    def __init__(self, queue: redis.Redis, keys: Keys):
        self.queue, self.queue_key = queue, Queue(keys.drain_queue, connection=queue).key
        job = get_current_job()
        self.worker_key = f"{Worker.redis_worker_namespace_prefix}{job.worker_name}" \
            if job is not None and job.worker_name else None

    def __call__(self) -> bool:
        waiting, stopping = self._look()
        return waiting or stopping

    def stopping(self) -> bool:
        return self._look()[1]

    def _look(self) -> tuple[bool, bool]:
        pipe = self.queue.pipeline(transaction=False)
        pipe.llen(self.queue_key)
        if self.worker_key is not None:
            pipe.hexists(self.worker_key, "shutdown_requested_date")
        replies = pipe.execute()
        return bool(replies[0]), bool(replies[1]) if len(replies) > 1 else False


def _pace(job_id: str, window_s: float, deadline: float) -> None:
    """A partition's turn starts no sooner than a window after its drain was queued (its last turn's end,
    for a drain queued by `requeue_if_behind`). A turn has a fixed cost (~24 ms of CPU with a small batch,
    `bench/turn_cost.py`: the writer, the fence, the locks, the requeue); without this the rotation would
    spin as fast as the CPU allows, spending it on that cost with batches of a few events. With it, a
    partition's batch gathers a window's events, and the sleep frees the CPU for the other workers."""
    since = queued_at(job_id)
    if since is None:
        return
    # capped at the window: the stamp is another host's clock, which may run ahead of this one
    wait = min(since + window_s - time.time(), window_s, deadline - time.monotonic())
    if wait > 0:
        time.sleep(wait)


def take_turns(queue: redis.Redis, keys: Keys, namespace: str, deadline: float,
               drain_turn: Callable[[int, str, float], bool], yielding: Yielding, window_s: float = 0.0) -> int:
    """Adopt waiting drains one after another until `deadline`, until none waits or until the worker is
    stopping; `drain_turn(partition, job_id, deadline)` drains one and says whether to go on (False: it was
    refused or stalled). Each turn is paced by `window_s` (`_pace`). Returns how many turns were taken. A
    broker that does not answer ends the turns: the scheduler carries on."""
    turns = 0
    while time.monotonic() < deadline:
        try:
            adopted = None if yielding.stopping() else adopt_waiting(queue, keys, namespace)
        except health.BROKER_FAILURES:
            break
        if adopted is None:
            break
        turns += 1
        _pace(adopted[1], window_s, deadline)
        if not drain_turn(adopted[0], adopted[1], deadline):
            break
    return turns
