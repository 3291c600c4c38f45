"""The one way the tests drain what was published: every partition, in-process, against the real broker.

`drain_all(client, settings)` runs the drain job's function once per partition (what a worker's job does,
without RQ); `via_rq=True` goes the way the stack's workers go instead: the scheduler's pass queues a
drain per partition with a backlog and a burst RQ worker works them off. Either returns what was stored
and dead-lettered.
"""

from __future__ import annotations

from typing import NamedTuple

import redis

from epochstream.settings import Settings


class Drained(NamedTuple):
    stored: int
    dead_lettered: int


def drain_all(client: redis.Redis, settings: Settings, *, via_rq: bool = False) -> Drained:
    if via_rq:
        return _through_rq(client, settings)
    from workers.drain import drain

    results = [drain(client, settings, p) for p in range(settings.partitions)]
    return Drained(sum(r.stored for r in results), sum(r.dead_lettered for r in results))


def _through_rq(client: redis.Redis, settings: Settings) -> Drained:
    from rq import Worker
    from rq.registry import FinishedJobRegistry

    from workers.scheduling import drain_queue, schedule_once

    queue = drain_queue(client, settings)
    finished = FinishedJobRegistry(queue=queue)
    before = set(finished.get_job_ids())
    schedule_once(client, settings, settings.redis_url)
    Worker([queue], connection=client).work(burst=True)
    stored = dead = 0
    for job in queue.job_class.fetch_many(sorted(set(finished.get_job_ids()) - before), connection=client):
        result = job.return_value() if job is not None else None
        if isinstance(result, dict):
            stored += result.get("stored", 0)
            dead += result.get("dead_lettered", 0)
    return Drained(stored, dead)
