"""Trend flags as pure functions over an epoch history. No I/O: used by workers, API and CLI alike.

A history is a sequence of (epoch, metrics) rows ordered by epoch; metrics map names to floats, NaN and
±inf included. Definitions (also in README.md, "Trend flags"):

- best epoch: the epoch with the lowest (min) or highest (max) *finite* value of a metric; ties go to the
  earliest epoch. Default metric `val/loss` (min); `train/loss` when no epoch has a validation loss.
- epochs since improvement: how many epochs with a value of the metric came after the last epoch that
  beat the running best by more than `min_delta`.
- plateau: epochs since improvement >= `patience`.
- overfitting: over the last `window` + 1 epochs that have both losses, validation loss rose while
  training loss fell, and the latest validation loss is worse than the best one.
- diverging: the latest loss is NaN/±inf, or more than `factor` times its best (finite, positive) value.
- suspect metric: a series that is all NaN, all zero (>= 2 epochs) or constant (>= 3 epochs, learning
  rate excepted): the signature of an accumulation or logging bug.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
)
from schemas.trend_rules import better as _better

__all__ = ["CONSTANT_OK", "DEFAULT_METRIC", "DEFAULT_MIN_DELTA", "DEFAULT_PATIENCE", "DEFAULT_WINDOW",
           "DIVERGENCE_FACTOR", "FALLBACK_METRIC", "Best", "EpochRow", "Mode", "TrendConfig", "best_epoch",
           "default_metric", "divergence_evidence", "epochs_since_improvement", "is_diverging", "is_overfitting",
           "is_plateaued", "overfitting_evidence", "recommendation", "series", "suspect_metrics"]


def series(history: Sequence[EpochRow], metric: str) -> list[tuple[int, float]]:
    """(epoch, value) for every epoch that reported `metric`, non-finite values included."""
    return [(row.epoch, row.metrics[metric]) for row in history if metric in row.metrics]


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
        if best is None or _better(value, best.value, mode):
            best = Best(row.epoch, value, metric, mode)
    return best


def default_metric(history: Sequence[EpochRow]) -> str:
    """`val/loss` when any epoch has it, else `train/loss`."""
    return DEFAULT_METRIC if any(DEFAULT_METRIC in row.metrics for row in history) else FALLBACK_METRIC


def epochs_since_improvement(history: Sequence[EpochRow], metric: str = DEFAULT_METRIC, mode: Mode = "min",
                             min_delta: float = 0.0) -> int | None:
    """Epochs reporting `metric` after the last one that beat the running best by more than `min_delta`.

    None when the metric never had a finite value. The first finite value counts as an improvement.
    """
    running: float | None = None
    since: int | None = None
    for _, value in series(history, metric):
        if math.isfinite(value) and (running is None or _better(value, running, mode, min_delta)):
            running, since = value, 0
        elif since is not None:
            since += 1
    return since


def is_plateaued(history: Sequence[EpochRow], metric: str = DEFAULT_METRIC, mode: Mode = "min",
                 patience: int = DEFAULT_PATIENCE, min_delta: float = DEFAULT_MIN_DELTA) -> bool:
    """No improvement larger than `min_delta` for `patience` or more epochs."""
    since = epochs_since_improvement(history, metric, mode, min_delta)
    return since is not None and since >= patience


def _both_losses(history: Sequence[EpochRow]) -> list[tuple[int, float, float]]:
    out = []
    for row in history:
        train, val = row.metrics.get(FALLBACK_METRIC), row.metrics.get(DEFAULT_METRIC)
        if train is not None and val is not None and math.isfinite(train) and math.isfinite(val):
            out.append((row.epoch, train, val))
    return out


def overfitting_evidence(history: Sequence[EpochRow], window: int = DEFAULT_WINDOW) -> str | None:
    """Why the run is overfitting (the epochs and deltas), or None when it is not."""
    both = _both_losses(history)
    if len(both) < window + 1:
        return None
    (e0, t0, v0), (e1, t1, v1) = both[-window - 1], both[-1]
    best_val = min(v for _, _, v in both)
    if v1 > v0 and t1 < t0 and v1 > best_val:
        return (f"val/loss rose {v0:.4g} -> {v1:.4g} (+{v1 - v0:.3g}) while train/loss fell "
                f"{t0:.4g} -> {t1:.4g} ({t1 - t0:.3g}) over epochs {e0}-{e1}")
    return None


def is_overfitting(history: Sequence[EpochRow], window: int = DEFAULT_WINDOW) -> bool:
    """Validation loss worsening while training loss improves over the last `window` epochs."""
    return overfitting_evidence(history, window) is not None


def divergence_evidence(history: Sequence[EpochRow], metric: str | None = None,
                        factor: float = DIVERGENCE_FACTOR) -> str | None:
    """Why the loss is diverging, or None. Checks `metric` (default: the default metric) and train/loss."""
    metrics = dict.fromkeys([metric or default_metric(history), FALLBACK_METRIC])
    for name in metrics:
        points = series(history, name)
        if not points:
            continue
        epoch, last = points[-1]
        if not math.isfinite(last):
            return f"{name} is {last} at epoch {epoch}"
        best = best_epoch(history, name, "min")
        if best is not None and best.value > 0 and last > factor * best.value:
            return (f"{name} is {last:.4g} at epoch {epoch}, more than {factor:g}x its best "
                    f"{best.value:.4g} (epoch {best.epoch})")
    return None


def is_diverging(history: Sequence[EpochRow], metric: str | None = None, factor: float = DIVERGENCE_FACTOR) -> bool:
    """The latest loss is non-finite, or more than `factor` times its best value."""
    return divergence_evidence(history, metric, factor) is not None


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


def recommendation(history: Sequence[EpochRow], metric: str | None = None, mode: Mode = "min",
                   patience: int = DEFAULT_PATIENCE, min_delta: float = DEFAULT_MIN_DELTA,
                   window: int = DEFAULT_WINDOW, status: str | None = None, error: str | None = None) -> TrendFlags:
    """All flags plus what to do: investigate > use_checkpoint (overfitting) > stop_early (plateau) > continue.

    The whole-history form of `schemas.trend_state`: folding the history epoch by epoch and judging the
    state is the one implementation, so the read model's incremental answer is this answer.
    """
    from schemas.trend_state import fold, verdict  # the fold builds on the definitions above

    config = TrendConfig(monitor=metric, mode=mode if metric is not None else None, patience=patience,
                         min_delta=min_delta, window=window)
    return verdict(fold(None, history, config), config, status=status, error=error)
