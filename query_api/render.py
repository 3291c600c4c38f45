"""Bodies of the run responses, built from the read model's rows. No I/O and no web framework here.

Bodies are plain dicts in the shape of the `*Public` models (tests check them against the models and
the OpenAPI schema), encoded once with orjson: the epoch list of a long run is the hot path of polling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from epochstream.readmodel.judged import trends
from epochstream.readmodel.reader import RunRecord, Versions
from query_api.downsample import Mode, keep_indices
from query_api.encoding import float_or_null, non_finite_marker, stored_float, strict_list, strict_metrics
from query_api.series import EpochSeries, SystemPoint
from schemas.trend_rules import EpochRow
from schemas.trends import best_epoch


def epoch_item(series: EpochSeries, i: int, names: frozenset[str] | None = None) -> dict[str, Any]:
    row = series.rows[i]
    metrics = row.metrics if names is None else {k: v for k, v in row.metrics.items() if k in names}
    values, markers = strict_metrics(metrics)
    return {"epoch": row.epoch, "seq": series.seq[i], "ts": series.ts[i], "samples": series.samples[i],
            "metrics": values, "non_finite": markers}


def select_epochs(series: EpochSeries, *, since: int | None, names: frozenset[str] | None,
                  max_points: int | None, best_metric: str | None, best_mode: Mode) -> tuple[list[int], bool]:
    """(indices of the epochs an answer holds, whether it was downsampled): shared by JSON and Arrow."""
    chosen = [i for i, r in enumerate(series.rows) if since is None or r.epoch > since]
    if max_points is None or len(chosen) <= max_points:
        return chosen, False
    wanted = sorted({k for i in chosen for k in series.rows[i].metrics if names is None or k in names})
    columns = {k: [series.rows[i].metrics.get(k) for i in chosen] for k in wanted}
    best = {best_metric: best_mode} if best_metric in columns else None
    return [chosen[j] for j in keep_indices(len(chosen), columns, max_points, best)], True


def epochs_body(run_id: str, series: EpochSeries, *, since: int | None, metrics: Sequence[str] | None,
                max_points: int | None, best_metric: str | None, best_mode: Mode) -> dict[str, Any]:
    names = frozenset(metrics) if metrics else None
    chosen, downsampled = select_epochs(series, since=since, names=names, max_points=max_points,
                                        best_metric=best_metric, best_mode=best_mode)
    return {"run_id": run_id, "epochs": [epoch_item(series, i, names) for i in chosen], "total": len(series.rows),
            "last_epoch": series.rows[-1].epoch if series.rows else None, "downsampled": downsampled}


def best_body(run_id: str, series: EpochSeries, metric: str, mode: Mode) -> dict[str, Any]:
    best = best_epoch(series.rows, metric, mode)
    item = None
    if best is not None:
        item = epoch_item(series, next(i for i, r in enumerate(series.rows) if r.epoch == best.epoch))
    return {"run_id": run_id, "metric": metric, "mode": mode, "value": best.value if best else None, "epoch": item}


def system_body(run_id: str, points: Sequence[SystemPoint], *, since: int | None,
                max_points: int | None) -> dict[str, Any]:
    chosen = [p for p in points if since is None or (p.seq is not None and p.seq > since)]
    downsampled = False
    if max_points is not None and len(chosen) > max_points:
        names = sorted({k for p in chosen for k in p.values})
        columns = {k: [p.values.get(k) for p in chosen] for k in names}
        chosen = [chosen[j] for j in keep_indices(len(chosen), columns, max_points)]
        downsampled = True
    out = []
    for p in chosen:
        values, markers = strict_metrics(p.values)
        out.append({"seq": p.seq, "ts": p.ts, "values": values, "non_finite": markers})
    seqs = [p.seq for p in points if p.seq is not None]
    return {"run_id": run_id, "points": out, "total": len(points), "last_seq": max(seqs) if seqs else None,
            "downsampled": downsampled}


def run_status(versions: Versions, now_us: int) -> str:
    """The status a reader sees: a `running` run silent past max(3 x heartbeat, 60 s) is `stale`."""
    if versions.status == "running" and versions.stale_after_us is not None and versions.stale_after_us < now_us:
        return "stale"
    return versions.status


def _strict_fields(item: dict[str, Any], names: Sequence[str], markers: dict[str, str]) -> None:
    for name in names:
        value = stored_float(item.get(name))
        if marker := non_finite_marker(value):
            markers[name] = marker
        item[name] = float_or_null(value)


RUN_FIELDS = ("run_id", "project", "name", "tags", "host", "started_at", "finished_at", "last_seen", "heartbeat_s",
              "error", "traceback", "exit_code", "duration_s", "epochs", "last_epoch", "steps", "last_step",
              "system_samples", "best_metric", "best_mode", "best_epoch", "best_value", "final_loss", "patience",
              "min_delta", "events", "last_seq", "attempts", "drops", "dropped", "clock_ahead_s", "version",
              "ingested_at")


def run_body(record: RunRecord, series: EpochSeries, now_us: int) -> dict[str, Any]:
    summary = record.summary
    status = run_status(record.versions, now_us)
    body = {name: summary.get(name) for name in RUN_FIELDS}
    markers: dict[str, str] = {}
    _strict_fields(body, ("heartbeat_s", "duration_s", "best_value", "final_loss"), markers)
    lag = None
    ingested, seen = summary.get("ingested_at"), summary.get("last_seen")
    if ingested and seen:
        lag = max(0.0, (datetime.fromisoformat(ingested) - datetime.fromisoformat(seen)).total_seconds())
    body.update(
        status=status, stored_status=summary.get("status"),
        trends=trends(summary, record.trend_state, status, lambda: series.rows),
        config=orjson.Fragment(record.config_text) if record.config_text else {},  # as stored: any depth
        ingest_lag_s=lag, attempts=summary.get("attempts") or [], tags=summary.get("tags") or [],
        loss_history=strict_list([r.metrics.get("train/loss") for r in series.rows], "loss_history", markers),
        val_loss_history=strict_list([r.metrics.get("val/loss") for r in series.rows], "val_loss_history", markers),
        non_finite=markers)
    return body


LIST_FIELDS = ("run_id", "project", "name", "tags", "started_at", "finished_at", "last_seen", "epochs", "last_epoch",
               "steps", "best_metric", "best_mode", "best_epoch", "best_value", "final_loss", "dropped",
               "clock_ahead_s", "version")
_ITEM_FLAGS = ("recommendation", "is_overfitting", "is_plateaued", "is_diverging", "should_stop")


def list_item(summary: dict[str, Any], versions: Versions, state: dict[str, Any] | None,
              now_us: int, history: Callable[[], Sequence[EpochRow]] | None = None) -> dict[str, Any]:
    item = {name: summary.get(name) for name in LIST_FIELDS}
    item["status"] = run_status(Versions(versions.generation, 0, 0, 0, 0, summary.get("status") or "running",
                                         versions.stale_after_us), now_us)
    flags = trends(summary, state, item["status"], history)
    item.update({name: flags.get(name) for name in _ITEM_FLAGS})
    item["reason"] = flags.get("reason")
    item["attempts"] = len(summary.get("attempts") or [])
    markers: dict[str, str] = {}
    _strict_fields(item, ("best_value", "final_loss"), markers)
    item["non_finite"] = markers
    return item
