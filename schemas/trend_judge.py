"""Judging a trend state: every number a verdict rests on (`judge`), from what the fold keeps.

Pure and cheap (a few passes over windows of at most twice `TrendConfig.window` values): the API
re-judges stored states on reads. The definitions are README.md's, "Trend flags".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from schemas.trend_layout import ALL_SAME, BAD_SINCE, LAST, LAST_E, N_NAN, N_ZERO, OK, OK_E, N
from schemas.trend_rules import (
    AFTER_BEST,
    BLOWUP_EPOCHS,
    CONSTANT_OK,
    DEFAULT_METRIC,
    DIVERGENCE_FACTOR,
    FALLBACK_METRIC,
    MIN_WINDOW,
    NOISE_Z,
    REL_TOL,
    SMOOTH,
    Mode,
    TrendConfig,
)
from schemas.trend_stats import Line, curvature_noise, difference_noise, fit, median
from schemas.trend_words import Judgement, Overfit

if TYPE_CHECKING:
    from schemas.trend_state import TrendState


def suspect_metrics(state: TrendState) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in sorted(state.data["stats"]):
        stat = state.data["stats"][name]
        n, n_nan = stat[N], stat[N_NAN]
        if n_nan == n:
            out[name] = "all_nan"
        elif n >= 2 and stat[N_ZERO] == n:
            out[name] = "all_zero"
        elif n >= 3 and name not in CONSTANT_OK and stat[ALL_SAME]:
            out[name] = "constant"
    return out


def _worse_by(value: float, than: float, mode: Mode) -> float:
    return value - than if mode == "min" else than - value


def pair_noise(flat: list) -> float:
    """The validation curve's `curvature_noise` over a pair's window ([e, t, v, ...])."""
    return curvature_noise(flat[2::3])


def blowup_noise(values: list[float]) -> float | None:
    """The noise of the log values before the last BLOWUP_EPOCHS ones; None when not all are positive or
    too few come before them."""
    before = values[:-BLOWUP_EPOCHS]
    if len(before) < 4 or min(values) <= 0:
        return None
    logs = [math.log(v) for v in before]
    return difference_noise(logs, max(len(logs) // 2, 4))


def overfitting(state: TrendState, config: TrendConfig, metric: str) -> Overfit | None:
    """The validation curve's level since its best level (the median of up to SMOOTH values, at least
    AFTER_BEST of them) is worse than that best by more than its noise allows, while its training
    counterpart improved on its level then: the losses when the run logs both, else the monitored `val/X`.

    The noise is the larger of `curvature_noise` over the window (the turn of the curve itself must not
    pass for noise) and `difference_noise` of the values since the best (the longer the run rests there,
    the better that estimate)."""
    pairs = state.data["pairs"]
    name = DEFAULT_METRIC if DEFAULT_METRIC in pairs else (metric if metric in pairs else None)
    if name is None:
        return None
    train_name, flat, best, best_epoch, train_then = pairs[name]
    if best is None:
        return None
    mode = "min" if name == DEFAULT_METRIC else config.mode_of(name)
    after = [i for i in range(0, len(flat), 3) if flat[i] > best_epoch]
    if len(after) < AFTER_BEST:
        return None
    since = [flat[i + 2] for i in after]
    level, train_now = median(since[-SMOOTH:]), median([flat[i + 1] for i in after[-SMOOTH:]])
    min_delta = config.min_delta_or_default
    rise = _worse_by(level, best, mode)
    if rise <= max(min_delta, REL_TOL * abs(best)) or -_worse_by(train_now, train_then, mode) <= max(
            min_delta, REL_TOL * abs(train_then)):
        return None  # the common case, decided before any noise is estimated
    sigma = pair_noise(flat)
    if rise <= NOISE_Z * sigma:
        return None  # within the first estimate already: the second cannot make it less so
    sigma = max(sigma, difference_noise(since))
    tolerance = max(NOISE_Z * sigma, min_delta, REL_TOL * abs(best))
    if rise <= tolerance:
        return None
    return Overfit(val=name, train=train_name, mode=mode, best_level=best, best_epoch=best_epoch, level=level,
                   level_epochs=min(len(since), SMOOTH), epoch=flat[-3], noise=sigma, tolerance=tolerance,
                   train_then=train_then, train_now=train_now)


def divergence(state: TrendState, metric: str, mode: Mode,
               factor: float = DIVERGENCE_FACTOR) -> tuple[str, int | None] | None:
    """(why, first non-finite epoch of the current streak) when the run is diverging, else None.

    A blow-up is judged on ratios (a loss that explodes grows by factors): the training loss's recent
    level over its best must pass `factor`, and, when the window's values are all positive, the log of
    that ratio must also pass NOISE_Z times the noise of the log values before the level's epochs, so
    that a loss hovering near zero, whose lucky best is a tiny fraction of its typical value, is not
    taken for one."""
    stats = state.data["stats"]
    for name in dict.fromkeys([metric, FALLBACK_METRIC, DEFAULT_METRIC]):
        stat = stats.get(name)
        if stat is None or stat[BAD_SINCE] is None:
            continue
        before = f"; last finite {stat[OK]:.4g} at epoch {stat[OK_E]}" if stat[OK_E] is not None else ""
        return f"{name} is {stat[LAST]} from epoch {stat[BAD_SINCE]}{before}", stat[BAD_SINCE]
    grows = FALLBACK_METRIC if FALLBACK_METRIC in stats else (metric if mode == "min" else None)
    if grows is None:
        return None
    epochs, values = state.window(grows)
    best = state.best(grows, "min")
    if len(values) < BLOWUP_EPOCHS or best is None or best.value <= 0 or epochs[-1] != stats[grows][LAST_E]:
        return None
    level = median(values[-BLOWUP_EPOCHS:])
    if level <= factor * best.value:
        return None
    spread = blowup_noise(values)
    if spread is not None and math.log(level / best.value) <= NOISE_Z * spread:
        return None
    return (f"{grows} is {level:.4g} (median of the last {BLOWUP_EPOCHS} epochs), {level / best.value:.3g}x "
            f"its best {best.value:.4g} at epoch {best.epoch}"), None


def plateau(state: TrendState, config: TrendConfig, metric: str,
            mode: Mode) -> tuple[Line | None, bool, bool, bool]:
    """(the monitored metric's trend line over its window, whether that line is flat, whether it is a
    plateau, whether the window is all there is since the last learning-rate step).

    Flat: the line's change is within its noise (or immaterial). A plateau is flat and not worse than the
    metric's best level beyond its noise: a curve that got worse and stays there has degraded, it is not
    resting at its best.
    """
    epochs, values = state.window(metric)
    last = state.last_value(metric)
    if len(values) < MIN_WINDOW or last is None or epochs[-1] != last[0]:
        return None, False, False, False
    span = max(config.window, MIN_WINDOW)
    line = fit(epochs, values, span)
    if line is None:
        return None, False, False, False
    since_step = state.data["lr"] is not None and state.data["lr"][1] is not None and len(values) <= span
    min_delta = config.min_delta_or_default
    if line.significant(NOISE_Z, max(min_delta, REL_TOL * abs(line.level))):
        return line, False, False, since_step
    best = (state.data["lvl"].get(metric) or [None])[0]
    now = median(values[-SMOOTH:])  # raw best vs recent level: selection bias is what NOISE_Z is sized for
    degraded = best is not None and _worse_by(now, best, mode) > max(NOISE_Z * line.noise, min_delta,
                                                                      REL_TOL * abs(best))
    return line, True, not degraded, since_step


def judge(state: TrendState, config: TrendConfig) -> Judgement:
    """Every number the verdict rests on (pure, cheap: a few passes over windows of `config.window`)."""
    metric = state.monitored(config)
    mode = config.mode_of(metric)
    last = state.last_value(metric)
    since = state.since_improvement(metric)
    patience = config.patience_or_default
    line, flat, resting, since_step = plateau(state, config, metric, mode)
    diverging = divergence(state, metric, mode)
    return Judgement(
        metric=metric, mode=mode, patience=patience, min_delta=config.min_delta_or_default, epochs=state.epochs,
        last_epoch=state.last_epoch, best=state.best(metric, mode), last=last, since=since,
        stop_epoch=state.stop_epoch(metric),
        should_stop=last is not None and (not math.isfinite(last[1]) or (since or 0) >= patience),
        line=line, regime_epoch=state.data["lr"][1] if since_step else None,
        trend_flat=flat, plateau=resting and diverging is None, overfit=overfitting(state, config, metric),
        diverging=diverging[0] if diverging else None, non_finite_epoch=diverging[1] if diverging else None,
        suspects=suspect_metrics(state), logged=sorted(state.data["stats"]))
