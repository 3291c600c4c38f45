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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from schemas.read_models import TrendFlags

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


def _better(value: float, than: float, mode: Mode, min_delta: float = 0.0) -> bool:
    return value < than - min_delta if mode == "min" else value > than + min_delta


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

    A failed run is always `investigate`: the curves may look healthy, but a crashed run cannot continue.
    `reason` names the epochs and deltas behind the verdict.
    """
    metric = metric or default_metric(history)
    best = best_epoch(history, metric, mode)
    since = epochs_since_improvement(history, metric, mode, min_delta)
    plateau = since is not None and since >= patience
    overfit = overfitting_evidence(history, window)
    diverging = divergence_evidence(history, metric)
    suspects = suspect_metrics(history)
    flags = dict(epochs_since_improvement=since, is_plateaued=plateau, is_overfitting=overfit is not None,
                 is_diverging=diverging is not None, suspect_metrics=suspects)
    best_txt = f"best {metric} {best.value:.4g} at epoch {best.epoch}" if best else f"no finite {metric} yet"
    if status == "failed":
        first_line = (error or "no error text").strip().splitlines()[0] if (error or "").strip() else "no error text"
        return TrendFlags(**flags, recommendation="investigate", recommendation_epoch=best.epoch if best else None,
                          reason=f"the run failed: {first_line}; {best_txt}")
    if not history:
        return TrendFlags(**flags, recommendation="continue", reason="no epochs yet")
    if diverging or metric in suspects or FALLBACK_METRIC in suspects:
        why = diverging or "; ".join(f"{k} is {v}" for k, v in suspects.items())
        return TrendFlags(**flags, recommendation="investigate", reason=f"{why}; {best_txt}",
                          recommendation_epoch=best.epoch if best else None)
    if overfit and best is not None:
        return TrendFlags(**flags, recommendation="use_checkpoint", recommendation_epoch=best.epoch,
                          reason=f"{overfit}; {best_txt}")
    if plateau and best is not None:
        return TrendFlags(**flags, recommendation="stop_early", recommendation_epoch=best.epoch,
                          reason=f"no {metric} improvement over {min_delta:g} for {since} epochs; {best_txt}")
    extra = f"; suspect: {', '.join(f'{k} {v}' for k, v in suspects.items())}" if suspects else ""
    return TrendFlags(**flags, recommendation="continue",
                      reason=f"{best_txt}, {since or 0} epochs since improvement{extra}")
