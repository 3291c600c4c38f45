"""The cyclic garbage collector's settings in the processes that drain.

A drain allocates dozens of containers per event (decoded payloads, fold states parsed from JSON, planned
rows) and keeps a batch's worth alive until its commit. With CPython's default thresholds (700, 10, 10) that
means a young collection every few events, and, as the batch's survivors pile up, full collections that walk
the whole heap: rq, redis, pyarrow, pydantic, duckdb and everything else imported. None of that is garbage;
the drain's own objects are acyclic and freed by reference counting as the batch ends.

So a drain process freezes what is alive when it starts (`gc.freeze`: imported modules and settings leave
every later collection) and collects young objects every GEN0 allocations instead of 700. The collector stays
on, for the cycles libraries do make. Measured by `bench/drain_cost.py` (it applies this, as workers do, and
`--default-gc` measures without it in the same run): see BENCHMARKS.md.
"""

from __future__ import annotations

import gc

GEN0, GEN1, GEN2 = 10_000, 10, 10  # gen0: allocations between young collections (CPython's default: 700)


def tune_for_draining() -> None:
    """Freeze the heap as it is and raise the young generation's threshold. Idempotent; a forked work horse
    inherits both from its worker, and a job calls it again for what it imported since."""
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
