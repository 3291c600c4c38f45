"""Parsed per-run series (epoch history, system samples) as plain Python, built from read-model rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from epochstream.readmodel.reader import EpochRecord, SystemRecord
from epochstream.readmodel.values import iso, stored_float
from schemas.trend_rules import EpochRow


@dataclass(frozen=True)
class EpochSeries:
    rows: list[EpochRow]  # ordered by epoch
    seq: list[int | None]
    ts: list[str | None]
    samples: list[int | None]


def epoch_series(records: Sequence[EpochRecord]) -> EpochSeries:
    return EpochSeries([EpochRow(r.epoch, r.metrics) for r in records], [r.seq for r in records],
                       [iso(r.ts_us) for r in records], [r.samples for r in records])


@dataclass(frozen=True)
class SystemPoint:
    seq: int | None
    ts: str | None
    values: dict[str, float | None]


def _number(value: Any) -> float | None:
    value = stored_float(value)
    return None if value is None or isinstance(value, bool) else float(value)


def system_values(data: dict[str, Any]) -> dict[str, float | None]:
    """cpu_percent, rss_mb and `gpu<i>/<figure>` for every figure a GPU reported."""
    values: dict[str, float | None] = {}
    for name in ("cpu_percent", "rss_mb"):
        if data.get(name) is not None:
            values[name] = _number(data[name])
    for gpu in data.get("gpus") or []:
        index = gpu.get("index", 0)
        for key, value in gpu.items():
            if key not in ("index", "name") and value is not None:
                values[f"gpu{index}/{key}"] = _number(value)
    return values


def system_series(records: Sequence[SystemRecord]) -> list[SystemPoint]:
    return [SystemPoint(r.seq, iso(r.ts_us), system_values(r.data)) for r in records]
