"""Parsed per-run series (epoch history, system samples) as plain Python, built from Arrow tables.

The system projection's columns belong to the workers, so it is read by column name and type: `ts` and
`seq` if present, every numeric column as a series, and GPU figures (a `gpus` list of structs, or one
row per GPU with a `gpu_index`/`gpu` column) as `gpu<i>/<figure>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from schemas.trends import EpochRow

_NOT_SERIES = {"event_id", "run_id", "seq", "ts", "host", "pid", "stream_id", "ingested_at", "type", "version",
               "epoch", "gpu_index", "gpu", "index", "partition"}
_GPU_INDEX_COLUMNS = ("gpu_index", "gpu")


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    return None if value is None else str(value)


@dataclass(frozen=True)
class EpochSeries:
    rows: list[EpochRow]  # ordered by epoch
    seq: list[int | None]
    ts: list[str | None]
    samples: list[int | None]


def epoch_series(table: pa.Table) -> EpochSeries:
    n = table.num_rows
    names = table.column_names

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * n

    epochs, metrics = col("epoch"), col("metrics")
    rows = [EpochRow(int(e), dict(m or [])) for e, m in zip(epochs, metrics, strict=True)]
    order = sorted(range(n), key=lambda i: rows[i].epoch)  # the projection is ordered; do not depend on it
    seq, ts, samples = col("seq"), col("ts"), col("samples")
    return EpochSeries([rows[i] for i in order], [seq[i] for i in order], [_iso(ts[i]) for i in order],
                       [samples[i] for i in order])


@dataclass(frozen=True)
class SystemPoint:
    seq: int | None
    ts: str | None
    values: dict[str, float | None]


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t)


def system_series(table: pa.Table) -> list[SystemPoint]:
    """One point per sample (rows sharing a seq are merged), ordered by seq (or ts, or file order)."""
    schema = table.schema
    names = table.column_names
    n = table.num_rows
    data = {name: table.column(name).to_pylist() for name in names}
    gpu_col = next((c for c in _GPU_INDEX_COLUMNS if c in names and _numeric(schema.field(c).type)), None)
    scalar = [f.name for f in schema if f.name not in _NOT_SERIES and _numeric(f.type)]
    nested = [f.name for f in schema if pa.types.is_list(f.type) and pa.types.is_struct(f.type.value_type)]
    points: dict[Any, SystemPoint] = {}
    for i in range(n):
        seq = data["seq"][i] if "seq" in data else None
        ident = seq if seq is not None else ("row", i)
        point = points.get(ident)
        if point is None:
            point = points[ident] = SystemPoint(seq, _iso(data["ts"][i]) if "ts" in data else None, {})
        prefix = f"gpu{data[gpu_col][i]}/" if gpu_col and data[gpu_col][i] is not None else ""
        for name in scalar:
            value = data[name][i]
            point.values[prefix + name if not name.startswith(("cpu", "rss")) else name] = (
                None if value is None else float(value))
        for name in nested:
            for item in data[name][i] or []:
                idx = item.get("index", 0)
                for key, value in item.items():
                    if key != "index" and (isinstance(value, (int, float)) and not isinstance(value, bool)):
                        point.values[f"gpu{idx}/{key}"] = float(value)
    return sorted(points.values(), key=lambda p: (p.seq is None, p.seq or 0, p.ts or ""))
