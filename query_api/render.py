"""Bodies of the run responses, built from parsed projections. No I/O and no web framework here.

Bodies are plain dicts in the shape of the `*Public` models (tests check them against the models and
the OpenAPI schema), encoded once with orjson: the epoch list of a long run is the hot path of polling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from query_api.downsample import Mode, keep_indices
from query_api.encoding import float_or_null, non_finite_marker, stored_float, strict_list, strict_metrics
from query_api.models import RunPublic, TrendsPublic
from query_api.runindex import row_status
from query_api.series import EpochSeries, SystemPoint
from schemas.read_models import RunSummary, effective_status
from schemas.trends import best_epoch


def epoch_item(series: EpochSeries, i: int, names: frozenset[str] | None = None) -> dict[str, Any]:
    row = series.rows[i]
    metrics = row.metrics if names is None else {k: v for k, v in row.metrics.items() if k in names}
    values, markers = strict_metrics(metrics)
    return {"epoch": row.epoch, "seq": series.seq[i], "ts": series.ts[i], "samples": series.samples[i],
            "metrics": values, "non_finite": markers}


def epochs_body(run_id: str, series: EpochSeries, *, since: int | None, metrics: Sequence[str] | None,
                max_points: int | None, best_metric: str | None, best_mode: Mode) -> dict[str, Any]:
    names = frozenset(metrics) if metrics else None
    chosen = [i for i, r in enumerate(series.rows) if since is None or r.epoch > since]
    downsampled = False
    if max_points is not None and len(chosen) > max_points:
        wanted = sorted({k for i in chosen for k in series.rows[i].metrics if names is None or k in names})
        columns = {k: [series.rows[i].metrics.get(k) for i in chosen] for k in wanted}
        best = {best_metric: best_mode} if best_metric in columns else None
        chosen = [chosen[j] for j in keep_indices(len(chosen), columns, max_points, best)]
        downsampled = True
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


def run_status(summary: RunSummary, now: datetime) -> str:
    return effective_status(summary, now)


def run_body(m: RunSummary, series: EpochSeries, now: datetime) -> RunPublic:
    markers: dict[str, str] = {}

    def strict(name: str, value: Any) -> float | None:
        value = stored_float(value)
        if marker := non_finite_marker(value):
            markers[name] = marker
        return float_or_null(value)

    lag = None
    if m.ingested_at is not None and m.last_seen is not None:
        lag = max(0.0, (m.ingested_at - m.last_seen).total_seconds())
    losses = strict_list([r.metrics.get("train/loss") for r in series.rows], "loss_history", markers)
    val_losses = strict_list([r.metrics.get("val/loss") for r in series.rows], "val_loss_history", markers)
    return RunPublic(
        run_id=m.run_id, project=m.project, name=m.name, status=run_status(m, now), stored_status=m.status,
        config=m.config, tags=m.tags, host=m.host, started_at=m.started_at, finished_at=m.finished_at,
        last_seen=m.last_seen, heartbeat_s=strict("heartbeat_s", m.heartbeat_s), error=m.error,
        traceback=m.traceback, exit_code=m.exit_code, duration_s=strict("duration_s", m.duration_s),
        epochs=m.epochs, last_epoch=m.last_epoch if m.last_epoch is not None else (
            series.rows[-1].epoch if series.rows else None),
        best_metric=m.best_metric, best_mode=m.best_mode, best_epoch=m.best_epoch,
        best_value=strict("best_value", m.best_value), final_loss=strict("final_loss", m.final_loss),
        trends=TrendsPublic.model_validate(m.trends.model_dump()), events=m.events, last_seq=m.last_seq,
        version=m.version, ingested_at=m.ingested_at, ingest_lag_s=lag, loss_history=losses,
        val_loss_history=val_losses, non_finite=markers)


_ITEM_FLOATS = ("best_value", "final_loss")
_ITEM_FIELDS = ("run_id", "project", "name", "started_at", "finished_at", "last_seen", "epochs", "last_epoch",
                "best_metric", "best_epoch", "recommendation", "is_overfitting", "is_plateaued", "is_diverging",
                "version")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def list_item(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The public row; built once per index version (`static_item`), only `status` is decided per request."""
    item = row.get("_item") or static_item(row)
    if item["status"] != "running":
        return item
    return {**item, "status": row_status(row, now)}


def static_item(row: Mapping[str, Any]) -> dict[str, Any]:
    item = {name: _iso(row.get(name)) for name in _ITEM_FIELDS}
    item["status"] = row.get("status") or "running"
    markers = {}
    for name in _ITEM_FLOATS:
        value = stored_float(row.get(name))
        if marker := non_finite_marker(value):
            markers[name] = marker
        item[name] = float_or_null(value)
    item["non_finite"] = markers
    return item
