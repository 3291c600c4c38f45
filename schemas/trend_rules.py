"""What the trend functions share: a history row, the early-stopping configuration, and the defaults.

Pure (standard library only). `schemas.trends` judges a whole history; `schemas.trend_state` folds the
same judgement epoch by epoch (what the read model stores); both follow the definitions in README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Mode = Literal["min", "max"]
DEFAULT_METRIC = "val/loss"
FALLBACK_METRIC = "train/loss"
DEFAULT_PATIENCE = 5
DEFAULT_MIN_DELTA = 1e-4
DEFAULT_WINDOW = 3
DIVERGENCE_FACTOR = 2.0
CONSTANT_OK = frozenset({"learning_rate"})  # a fixed learning rate is a choice, not a bug


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


@dataclass(frozen=True)
class TrendConfig:
    """What a run monitors (from its `run_started`). None: the documented default."""

    monitor: str | None = None
    mode: Mode | None = None
    patience: int | None = None
    min_delta: float | None = None
    window: int = DEFAULT_WINDOW

    @property
    def patience_or_default(self) -> int:
        return self.patience if self.patience is not None else DEFAULT_PATIENCE

    @property
    def min_delta_or_default(self) -> float:
        return self.min_delta if self.min_delta is not None else DEFAULT_MIN_DELTA

    def mode_of(self, metric: str) -> Mode:
        """The given mode for the monitored metric, else the one its name implies."""
        if metric == self.monitor and self.mode is not None:
            return self.mode
        return "min"

    def key(self) -> tuple:
        """Equal keys mean equal judgements: a change of key needs a refold of the run's history."""
        return (self.monitor, self.mode, self.patience, self.min_delta, self.window)


def better(value: float, than: float, mode: Mode, min_delta: float = 0.0) -> bool:
    return value < than - min_delta if mode == "min" else value > than + min_delta
