"""Step history answers: rows as logged, or a downsampled curve built from rollups. No web framework here.

A long run has millions of steps, so a downsampled answer never reads them: `schemas.rollups.cover` spans
the range with stored bucket aggregates (plus at most 15 raw rows at each end), whose first, last, minimum,
maximum and first non-finite points are the candidates; `keep_indices` then thins each metric's candidates
to `max_points` with the same guarantees as epochs (first, last, best, min, max, first non-finite kept).
Steps are downsampled per metric: a row of a downsampled answer carries the metrics that kept that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from epochstream.readmodel.reader import ReadModelReader, StepRecord
from epochstream.readmodel.values import iso
from query_api.downsample import Mode, keep_indices
from query_api.encoding import strict_metrics
from schemas.rollups import Aggregate, Piece, candidates, cover, level_for, point

RAW_FACTOR = 2  # up to this many times max_points rows, the rows themselves are read and thinned


def _item(record: StepRecord, names: frozenset[str] | None) -> dict[str, Any]:
    metrics = record.metrics if names is None else {k: v for k, v in record.metrics.items() if k in names}
    values, markers = strict_metrics(metrics)
    return {"step": record.step, "epoch": record.epoch, "seq": record.seq, "ts": iso(record.ts_us),
            "metrics": values, "non_finite": markers}


def _aggregates(reader: ReadModelReader, run_id: str, pieces: Sequence[Piece], since: int | None,
                start: int) -> list[Aggregate]:
    out: list[Aggregate] = []
    for (kind, level), group in groupby(pieces, key=lambda p: (p.kind, p.level)):
        group = list(group)
        if kind == "raw":  # `cover` leaves raw rows only at the two ends of the range
            for piece in group:
                n = piece.hi - piece.lo
                rows = reader.steps(run_id, since, n) if piece.lo == start else reader.last_steps(run_id, n)
                out.extend(point(r.step, r.metrics) for r in rows)
        else:
            out.extend(reader.rollups(run_id, level, group[0].index, group[-1].index + 1))
    return out


def steps_body(reader: ReadModelReader, run_id: str, *, total: int, since: int | None,
               metrics: Sequence[str] | None, max_points: int | None, limit: int,
               best: tuple[str, Mode] | None) -> dict[str, Any]:
    names = frozenset(metrics) if metrics else None
    start = reader.first_step_ordinal(run_id, since)
    count = 0 if start is None else total - start
    body: dict[str, Any] = {"run_id": run_id, "steps": [], "total": total, "downsampled": False, "next_since": None}
    if count <= 0:
        return body
    if max_points is None:
        rows = reader.steps(run_id, since, limit)
        body["steps"] = [_item(r, names) for r in rows]
        if count > limit:
            body["next_since"] = rows[-1].step
        return body
    if count <= RAW_FACTOR * max_points:
        rows = reader.steps(run_id, since, count)
        wanted = sorted({k for r in rows for k in r.metrics if names is None or k in names})
        columns = {k: [r.metrics.get(k) for r in rows] for k in wanted}
        keep = keep_indices(len(rows), columns, max_points, dict([best]) if best and best[0] in columns else None)
        body.update(steps=[_item(rows[i], names) for i in keep], downsampled=len(keep) < len(rows))
        return body
    pieces = cover(start, total, level_for(count, max_points))
    per_metric = candidates(_aggregates(reader, run_id, pieces, since, start), names)
    chosen: dict[int, dict[str, float]] = {}
    for name, points in per_metric.items():
        steps = sorted(points)
        values = [points[s] for s in steps]
        mode = {name: best[1]} if best and best[0] == name else None
        for i in keep_indices(len(steps), {name: values}, max_points, mode):
            chosen.setdefault(steps[i], {})[name] = values[i]
    items = []
    for step in sorted(chosen):
        values, markers = strict_metrics(chosen[step])
        items.append({"step": step, "epoch": None, "seq": None, "ts": None, "metrics": values, "non_finite": markers})
    body.update(steps=items, downsampled=True)
    return body
