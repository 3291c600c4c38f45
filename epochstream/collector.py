"""The cyclic garbage collector in the long-lived processes: the API and the drain workers.

What such a process builds at start-up (imported modules, routes, settings) lives as long as it does, and
what it handles (a downsampled answer; a drained batch's decoded payloads, fold states parsed from JSON,
planned rows) is tens of thousands of short-lived containers, acyclic and freed by reference counting. With
CPython's default thresholds (700, 10, 10) that means a young collection every few hundred allocations and,
as survivors pile up, full collections that walk the whole start-up heap (rq, redis, pyarrow, pydantic,
duckdb, FastAPI...): none of it garbage. So these processes freeze the heap they start with (`gc.freeze`:
out of every later collection) and collect young objects less often. The collector stays on, for the
cycles libraries do make.

Measured: the API's p99 of `/steps?max_points=1000` (bench/long_run.py) and the drain's CPU per event
(bench/drain_cost.py, `--gc both` measures with and without it in the same run): BENCHMARKS.md.
"""

from __future__ import annotations

import gc

API_GEN0 = 20_000  # allocations between young collections in the API (CPython's default: 700)
DRAIN_GEN0 = 10_000  # the same in drain workers


def tune_collector(gen0: int) -> None:
    """Freeze the heap as it is and collect young objects every `gen0` allocations (the older generations'
    thresholds kept). A forked child (an rq work horse) inherits both."""
    gc.freeze()
    gc.set_threshold(gen0, *gc.get_threshold()[1:])
