"""What the trend functions share: a history row, the early-stopping configuration, and the defaults.

Pure (standard library only). `schemas.trends` judges a whole history; `schemas.trend_state` folds the
same judgement epoch by epoch (what the read model stores); both follow the definitions in README.md,
"Trend flags", whose parameters are the constants below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Mode = Literal["min", "max"]
DEFAULT_METRIC = "val/loss"
FALLBACK_METRIC = "train/loss"
LR_METRIC = "learning_rate"
DEFAULT_PATIENCE = 5
DEFAULT_MIN_DELTA = 1e-4
DEFAULT_WINDOW = 10  # W: how many recent epochs the noise-aware statistics look at
MIN_WINDOW = 5  # fewest epochs in the window before a trend (and so a plateau) is judged
SMOOTH = 5  # a curve's level now: the median of its last SMOOTH values (two spikes cannot move it) ...
BEST_SMOOTH = 3  # ... and its best level: the best median of BEST_SMOOTH consecutive values (one spike cannot)
AFTER_BEST = 3  # overfitting: fewest epochs after the best level before the level since is judged
NOISE_Z = 5.0  # a change counts when it exceeds NOISE_Z times the curve's noise ...
REL_TOL = 0.01  # ... and 1% of its level (smaller changes are immaterial, however clean the curve)
LR_STEP = 2.0  # a learning rate that changes by this factor within one epoch starts a new regime
BLOWUP_EPOCHS = 3  # diverging: the median of the training loss's last BLOWUP_EPOCHS values is past ...
DIVERGENCE_FACTOR = 2.0  # ... this many times its best
CONSTANT_OK = frozenset({LR_METRIC})  # a fixed learning rate is a choice, not a bug

# Names whose bigger values are better: a word of the metric's name (split at anything that is not a
# letter or digit, lower case, trailing digits ignored: `val/acc5`, `mAP@50`, `bleu4`) is one of these.
MAX_WORDS = frozenset({"accuracy", "acc", "f1", "auc", "precision", "recall", "iou", "bleu", "map"})
_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=4096)  # a pure function of a handful of names, asked on every verdict
def infer_mode(metric: str) -> Mode:
    """`max` for names with an accuracy-like word (MAX_WORDS), else `min` (losses, errors, perplexity)."""
    for word in _WORD.findall(metric.lower()):
        if word in MAX_WORDS or word.rstrip("0123456789") in MAX_WORDS:
            return "max"
    return "min"


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
        return abs(self.min_delta) if self.min_delta is not None else DEFAULT_MIN_DELTA

    def mode_of(self, metric: str) -> Mode:
        """The given mode for the monitored metric, else the one its name implies (`infer_mode`)."""
        if metric == self.monitor and self.mode is not None:
            return self.mode
        return infer_mode(metric)

    def key(self) -> tuple:
        """Equal keys mean equal judgements: a change of key needs a refold of the run's history."""
        return (self.monitor, self.mode, self.patience, self.min_delta, self.window)


def better(value: float, than: float, mode: Mode, min_delta: float = 0.0) -> bool:
    """Keras's and Lightning's improvement test, in their arithmetic: `value - (-min_delta) < best` (min),
    `value - min_delta > best` (max). Written as they write it so float rounding lands the same way."""
    return value + min_delta < than if mode == "min" else value - min_delta > than


def train_counterpart(metric: str) -> str | None:
    """`val/X` -> `train/X`: the training curve an overfitting judgement compares a validation curve with."""
    return "train/" + metric[4:] if metric.startswith("val/") and len(metric) > 4 else None
