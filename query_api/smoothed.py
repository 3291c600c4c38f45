"""Answers with `ema=`: every value smoothed over the full-resolution series, then filtered and downsampled.

The EMA is a fold over the series in logged order, so it is computed over every stored epoch, and over every
stored step row (up to EMA_MAX_STEPS: a run longer than that is refused with a clear 422 rather than
smoothed from rollups, whose buckets keep extremes, not means, so any EMA from them would be a different
curve). `since` only chooses which smoothed points are sent: a smoothed value always depends on the whole
history before it. Downsampling then runs on the smoothed values, with the usual guarantees (first, last,
best, min, max, first non-finite kept). No web framework here.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from epochstream.readmodel.reader import ReadModelReader, StepRecord
from epochstream.readmodel.values import iso
from query_api.downsample import Mode, keep_indices
from query_api.encoding import strict_metrics
from query_api.limits import EMA_MAX_STEPS, STEP_COLUMNS_CACHE_BYTES
from query_api.series import EpochSeries
from query_api.smoothing import ema, smooth_rows
from schemas.trend_rules import EpochRow


class TooLongToSmooth(ValueError):
    def __init__(self, steps: int):
        self.steps = steps
        super().__init__(
            f"this run has {steps:,} steps; smoothing reads every one of them and is done for runs of up to "
            f"{EMA_MAX_STEPS:,} steps. Ask without `ema` (the curve is downsampled from rollups), or smooth the "
            f"rows yourself (page through them without `max_points`).")


def smoothed_epochs(series: EpochSeries, weight: float, metrics: Sequence[str] | None) -> EpochSeries:
    """The same epochs with every (selected) metric replaced by its EMA over all stored epochs."""
    names = frozenset(metrics) if metrics else None
    values = smooth_rows([r.metrics for r in series.rows], weight, names)
    return EpochSeries([EpochRow(r.epoch, v) for r, v in zip(series.rows, values, strict=True)], series.seq,
                       series.ts, series.samples)


@dataclass
class StepColumns:
    """Every step row of a run as columns (what smoothing reads, whatever the weight): a few MB for 100,000
    steps, where the rows as Python objects would take tens."""

    step: array
    seq: array
    ts_us: array
    epoch: array  # -1: not known
    metrics: dict[str, tuple[array, array]]  # name -> (row indices that carry it, its values there)

    @property
    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.step, self.seq, self.ts_us, self.epoch)) + sum(
            i.itemsize * len(i) + v.itemsize * len(v) for i, v in self.metrics.values())


def columns_of(rows: Sequence[StepRecord]) -> StepColumns:
    present: set[str] = set()
    for r in rows:
        present.update(r.metrics)
    metrics = {}
    for name in sorted(present):
        where = array("q", (i for i, r in enumerate(rows) if name in r.metrics))
        metrics[name] = (where, array("d", (rows[i].metrics[name] for i in where)))
    return StepColumns(array("q", (r.step for r in rows)), array("q", (r.seq for r in rows)),
                       array("q", (r.ts_us for r in rows)),
                       array("q", (-1 if r.epoch is None else r.epoch for r in rows)), metrics)


class ColumnsCache:
    """The columns of the runs smoothed lately, by (run, its steps version), within a byte budget: moving the
    smoothing slider re-reads nothing; new steps make a new version (read again, once for every poller)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, StepColumns] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], StepColumns]) -> StepColumns:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        value = load()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > 1 and sum(c.nbytes for c in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)
        return value


_CACHES: WeakKeyDictionary[ReadModelReader, ColumnsCache] = WeakKeyDictionary()  # one per app's reader
_CACHES_LOCK = threading.Lock()


def columns_cache(reader: ReadModelReader) -> ColumnsCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(reader)
        if cache is None:
            cache = _CACHES[reader] = ColumnsCache(STEP_COLUMNS_CACHE_BYTES)
        return cache


def smoothed_steps_body(reader: ReadModelReader, run_id: str, *, version: tuple, total: int, weight: float,
                        since: int | None, metrics: Sequence[str] | None, max_points: int | None, limit: int,
                        best: tuple[str, Mode] | None) -> dict[str, Any]:
    """Like `steps_body`, with every value an EMA over all of the run's step rows. Downsampled per metric:
    a row carries the metrics that kept that step. Worked column by column: it runs over every step."""
    if total > EMA_MAX_STEPS:
        raise TooLongToSmooth(total)
    body: dict[str, Any] = {"run_id": run_id, "steps": [], "total": total, "downsampled": False,
                            "next_since": None, "ema": weight}
    if total == 0:
        return body
    cols = columns_cache(reader).get((run_id, version), lambda: columns_of(reader.steps(run_id, None, total)))
    names = frozenset(metrics) if metrics else None
    columns = {name: (where, ema(values, weight)) for name, (where, values) in cols.metrics.items()
               if names is None or name in names}
    # `since` chooses a tail of the rows: [lo, hi) of them are sent (hi: the page end without max_points).
    n = len(cols.step)
    lo = 0 if since is None else bisect_right(cols.step, since)
    hi = n if max_points is not None else min(n, lo + limit)
    kept: dict[int, dict[str, float]] = {}
    for name, (where, values) in columns.items():
        a, b = bisect_left(where, lo), bisect_left(where, hi)
        picks = range(a, b)
        if max_points is not None and b - a > max_points:
            mode = {name: best[1]} if best and best[0] == name else None
            picks = [a + j for j in keep_indices(b - a, {name: values[a:b]}, max_points, mode)]
            body["downsampled"] = True
        for k in picks:
            kept.setdefault(where[k], {})[name] = values[k]
    if max_points is None:
        order = range(lo, hi)  # a page: every row in it, even one whose metrics were all filtered out
        if hi < n:
            body["next_since"] = cols.step[hi - 1]
    else:
        order = sorted(kept)

    def item(i: int) -> dict[str, Any]:
        strict, markers = strict_metrics(kept.get(i, {}))
        epoch = cols.epoch[i]
        return {"step": cols.step[i], "epoch": None if epoch < 0 else epoch, "seq": cols.seq[i],
                "ts": iso(cols.ts_us[i]), "metrics": strict, "non_finite": markers}

    body["steps"] = [item(i) for i in order]
    return body
