"""Trend flags as pure functions over a whole epoch history, for ad-hoc questions (`/best?metric=&mode=`,
notebooks). No I/O: used by workers, API and CLI alike.

A history is a sequence of (epoch, metrics) rows ordered by epoch; metrics map names to floats, NaN and
±inf included. The definitions are in README.md, "Trend flags". `best_epoch` and
`epochs_since_improvement` are written out directly (they are the references the fold is tested
against); the noise-aware flags and the recommendation fold the history with `schemas.trend_state` and
judge the state, so the read model's incremental answer is, by construction, this answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from schemas.read_models import TrendFlags
from schemas.trend_rules import (
    CONSTANT_OK,
    DEFAULT_METRIC,
    DEFAULT_MIN_DELTA,
    DEFAULT_PATIENCE,
    DEFAULT_WINDOW,
    DIVERGENCE_FACTOR,
    FALLBACK_METRIC,
    Best,
    EpochRow,
    Mode,
    TrendConfig,
    infer_mode,
)
from schemas.trend_rules import better as _better

__all__ = ["CONSTANT_OK", "DEFAULT_METRIC", "DEFAULT_MIN_DELTA", "DEFAULT_PATIENCE", "DEFAULT_WINDOW",
           "DIVERGENCE_FACTOR", "FALLBACK_METRIC", "Best", "EpochRow", "Mode", "TrendConfig", "best_epoch",
           "default_metric", "divergence_evidence", "epochs_since_improvement", "infer_mode", "is_diverging",
           "is_overfitting", "is_plateaued", "overfitting_evidence", "recommendation", "series", "suspect_metrics"]


def series(history: Sequence[EpochRow], metric: str) -> list[tuple[int, float]]:
    """(epoch, value) for every epoch that reported `metric`, non-finite values included."""
    return [(row.epoch, row.metrics[metric]) for row in history if metric in row.metrics]


def best_epoch(history: Sequence[EpochRow], metric: str = DEFAULT_METRIC, mode: Mode | None = None) -> Best | None:
    """The epoch with the lowest (mode=min) or highest (max) finite value of `metric` (mode None: inferred
    from the name, `infer_mode`).

    Ties go to the earliest epoch (the cheaper checkpoint, and what `ModelCheckpoint(save_best_only=True)`
    keeps). Non-finite values never win. None when no epoch has a finite value for the metric.
    """
    mode = mode or infer_mode(metric)
    best: Best | None = None
    for row in history:
        value = row.metrics.get(metric)
        if value is None or not math.isfinite(value):
            continue
        if best is None or _better(value, best.value, mode):
            best = Best(row.epoch, value, metric, mode)
    return best


def default_metric(history: Sequence[EpochRow]) -> str:
    """`val/loss` when any epoch has it, else `train/loss`."""
    return DEFAULT_METRIC if any(DEFAULT_METRIC in row.metrics for row in history) else FALLBACK_METRIC


def epochs_since_improvement(history: Sequence[EpochRow], metric: str = DEFAULT_METRIC, mode: Mode | None = None,
                             min_delta: float = 0.0) -> int | None:
    """Keras's and Lightning's `wait`: epochs reporting `metric` since the last one that beat the best so
    far by more than `min_delta` (all epochs reporting it, while none was finite). None when no epoch
    reported it. A non-finite value is never an improvement.
    """
    mode = mode or infer_mode(metric)
    best: float | None = None
    wait: int | None = None
    for _, value in series(history, metric):
        wait = 0 if wait is None else wait
        if math.isfinite(value) and (best is None or _better(value, best, mode, abs(min_delta))):
            best, wait = value, 0
        else:
            wait += 1
    return wait


def _config(metric: str | None, mode: Mode | None, patience: int, min_delta: float, window: int) -> TrendConfig:
    return TrendConfig(monitor=metric, mode=mode if metric is not None else None, patience=patience,
                       min_delta=min_delta, window=window)


def recommendation(history: Sequence[EpochRow], metric: str | None = None, mode: Mode | None = None,
                   patience: int = DEFAULT_PATIENCE, min_delta: float = DEFAULT_MIN_DELTA,
                   window: int = DEFAULT_WINDOW, status: str | None = None, error: str | None = None, *,
                   silent_since: datetime | None = None) -> TrendFlags:
    """All flags plus what to do for the run's `status` (the whole-history form of
    `schemas.trend_state.verdict`: fold everything, then judge)."""
    from schemas.trend_state import fold, verdict  # the state module builds on the definitions above

    config = _config(metric, mode, patience, min_delta, window)
    return verdict(fold(None, history, config), config, status=status, error=error, silent_since=silent_since)


def _judged(history: Sequence[EpochRow], metric: str | None, mode: Mode | None, patience: int, min_delta: float,
            window: int):
    from schemas.trend_state import fold, judge

    config = _config(metric, mode, patience, min_delta, window)
    return judge(fold(None, history, config), config)


def is_plateaued(history: Sequence[EpochRow], metric: str | None = None, mode: Mode | None = None,
                 patience: int = DEFAULT_PATIENCE, min_delta: float = DEFAULT_MIN_DELTA,
                 window: int = DEFAULT_WINDOW) -> bool:
    """The monitored metric is flat within its noise over the last `window` epochs, at its best level."""
    return _judged(history, metric, mode, patience, min_delta, window).plateau


def overfitting_evidence(history: Sequence[EpochRow], window: int = DEFAULT_WINDOW, metric: str | None = None,
                         mode: Mode | None = None) -> str | None:
    """Why the run is overfitting (levels, noise, the training curve), or None when it is not."""
    from schemas.trend_words import overfit_text

    judged = _judged(history, metric, mode, DEFAULT_PATIENCE, DEFAULT_MIN_DELTA, window)
    return overfit_text(judged.overfit) if judged.overfit else None


def is_overfitting(history: Sequence[EpochRow], window: int = DEFAULT_WINDOW, metric: str | None = None,
                   mode: Mode | None = None) -> bool:
    """The validation level is worse than its best beyond its noise while the training curve improves."""
    return overfitting_evidence(history, window, metric, mode) is not None


def divergence_evidence(history: Sequence[EpochRow], metric: str | None = None) -> str | None:
    """Why the run is diverging (the first non-finite epoch, or the blow-up of the training loss), or None."""
    return _judged(history, metric, None, DEFAULT_PATIENCE, DEFAULT_MIN_DELTA, DEFAULT_WINDOW).diverging


def is_diverging(history: Sequence[EpochRow], metric: str | None = None) -> bool:
    """A loss or the monitored metric is not finite, or the training loss is past 2x its best."""
    return divergence_evidence(history, metric) is not None


def suspect_metrics(history: Sequence[EpochRow]) -> dict[str, str]:
    """Metric -> `all_nan`, `all_zero` or `constant`: series no healthy training produces."""
    names = sorted({name for row in history for name in row.metrics})
    out: dict[str, str] = {}
    for name in names:
        values = [v for _, v in series(history, name)]
        if all(math.isnan(v) for v in values):
            out[name] = "all_nan"
        elif len(values) >= 2 and all(v == 0 for v in values):
            out[name] = "all_zero"
        elif len(values) >= 3 and name not in CONSTANT_OK and all(v == values[0] for v in values):
            out[name] = "constant"
    return out
