"""Drain batch durations as a histogram that any process can read: counters in one hash on the queue broker.

Each drained batch adds 1 to the counter of the first bucket whose upper bound it fits (`le=<bound>`, or
`le=+Inf`), 1 to `count` and its seconds to `sum`. Readers (`/metrics`, `epochstream status`) add the
buckets up into Prometheus' cumulative form. Counters only grow, across every worker host, so the
histogram is a Prometheus counter family like any other (rates over time are the scraper's job).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.keys import Keys

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COUNT, SUM = "count", "sum"


def bucket_field(seconds: float) -> str:
    for bound in BUCKETS_S:
        if seconds <= bound:
            return f"le={bound}"
    return "le=+Inf"


def record_batch(pipe, keys: Keys, seconds: float) -> None:
    """Queue the three increments on `pipe` (a pipeline of the queue broker; the caller executes it)."""
    pipe.hincrby(keys.drain_metrics, bucket_field(seconds), 1)
    pipe.hincrby(keys.drain_metrics, COUNT, 1)
    pipe.hincrbyfloat(keys.drain_metrics, SUM, seconds)


@dataclass(frozen=True)
class BatchDurations:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +inf last
    count: int
    sum: float


def parse(fields: dict) -> BatchDurations:
    """Pure: the hash's fields (bytes or str) as cumulative buckets."""
    def text(x) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    raw = {text(k): text(v) for k, v in fields.items()}
    cumulative, running = [], 0
    for bound in (*BUCKETS_S, float("inf")):
        running += int(raw.get(bucket_field(bound) if bound != float("inf") else "le=+Inf", 0))
        cumulative.append((bound, running))
    return BatchDurations(tuple(cumulative), int(raw.get(COUNT, 0)), float(raw.get(SUM, 0.0)))


def read(queue, keys: Keys) -> BatchDurations:
    return parse(queue.hgetall(keys.drain_metrics))
