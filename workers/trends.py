"""Trend flags as pure functions over an epoch history. No I/O: used by workers, API and CLI alike.

A history is a sequence of (epoch, metrics) rows ordered by epoch; metrics map names to floats, NaN and
±inf included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["min", "max"]
DEFAULT_METRIC = "val/loss"
FALLBACK_METRIC = "train/loss"


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Best:
    epoch: int
    value: float
    metric: str
    mode: Mode


def best_epoch(history: Sequence[EpochRow], metric: str = DEFAULT_METRIC, mode: Mode = "min") -> Best | None:
    """The epoch with the lowest (mode=min) or highest (max) finite value of `metric`.

    Ties go to the earliest epoch (the cheaper checkpoint). Non-finite values never win. None when no
    epoch has a finite value for the metric.
    """
    best: Best | None = None
    for row in history:
        value = row.metrics.get(metric)
        if value is None or not math.isfinite(value):
            continue
        if best is None or (value < best.value if mode == "min" else value > best.value):
            best = Best(row.epoch, value, metric, mode)
    return best


def default_metric(history: Sequence[EpochRow]) -> str:
    """`val/loss` when any epoch has it, else `train/loss`."""
    return DEFAULT_METRIC if any(DEFAULT_METRIC in row.metrics for row in history) else FALLBACK_METRIC
