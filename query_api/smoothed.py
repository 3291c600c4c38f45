"""Answers with `ema=`: every value smoothed over the full-resolution series, then filtered and downsampled.

The EMA is a fold over the series in logged order, so it is computed over every stored epoch, and over every
stored step row (up to EMA_MAX_STEPS: a run longer than that is refused with a clear 422 rather than
smoothed from rollups, whose buckets keep extremes, not means, so any EMA from them would be a different
curve). `since` only chooses which smoothed points are sent: a smoothed value always depends on the whole
history before it. Downsampling then runs on the smoothed values, with the usual guarantees (first, last,
best, min, max, first non-finite kept). No web framework here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from epochstream.readmodel.reader import ReadModelReader
from epochstream.readmodel.values import iso
from query_api.downsample import Mode, keep_indices
from query_api.encoding import strict_metrics
from query_api.limits import EMA_MAX_STEPS
from query_api.series import EpochSeries
from query_api.smoothing import smooth_rows
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


def smoothed_steps_body(reader: ReadModelReader, run_id: str, *, total: int, weight: float, since: int | None,
                        metrics: Sequence[str] | None, max_points: int | None, limit: int,
                        best: tuple[str, Mode] | None) -> dict[str, Any]:
    """Like `steps_body`, with every value an EMA over all of the run's step rows. Downsampled per metric:
    a row carries the metrics that kept that step."""
    if total > EMA_MAX_STEPS:
        raise TooLongToSmooth(total)
    body: dict[str, Any] = {"run_id": run_id, "steps": [], "total": total, "downsampled": False,
                            "next_since": None, "ema": weight}
    if total == 0:
        return body
    rows = reader.steps(run_id, None, total)
    smoothed = smooth_rows([r.metrics for r in rows], weight, frozenset(metrics) if metrics else None)
    chosen = [i for i, r in enumerate(rows) if since is None or r.step > since]

    def item(i: int, values: dict[str, float]) -> dict[str, Any]:
        strict, markers = strict_metrics(values)
        r = rows[i]
        return {"step": r.step, "epoch": r.epoch, "seq": r.seq, "ts": iso(r.ts_us), "metrics": strict,
                "non_finite": markers}

    if max_points is None:
        body["steps"] = [item(i, smoothed[i]) for i in chosen[:limit]]
        if len(chosen) > limit:
            body["next_since"] = rows[chosen[limit - 1]].step
        return body
    if len(chosen) <= max_points:
        body["steps"] = [item(i, smoothed[i]) for i in chosen]
        return body
    kept: dict[int, dict[str, float]] = {}
    for name in sorted({k for i in chosen for k in smoothed[i]}):
        where = [i for i in chosen if name in smoothed[i]]
        values = [smoothed[i][name] for i in where]
        mode = {name: best[1]} if best and best[0] == name else None
        for j in keep_indices(len(where), {name: values}, max_points, mode):
            kept.setdefault(where[j], {})[name] = values[j]
    body.update(steps=[item(i, kept[i]) for i in sorted(kept)], downsampled=True)
    return body
