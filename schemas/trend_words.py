"""From the numbers of a trend judgement to what a person reads: the recommendation for the run's status,
a one-line `reason` and the `evidence` lines behind it. Pure; `schemas.trend_state.judge` makes the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.trend_rules import BEST_SMOOTH, NOISE_Z, Best, Mode
from schemas.trend_stats import Line


@dataclass(slots=True)
class Overfit:
    val: str
    train: str
    mode: Mode
    best_level: float  # the best median of BEST_SMOOTH consecutive validation values, and its last epoch
    best_epoch: int
    level: float  # the median of the last `level_epochs` (up to SMOOTH) validation values since, at `epoch`
    level_epochs: int
    epoch: int
    noise: float
    tolerance: float
    train_then: float  # the training level at `best_epoch`, and now
    train_now: float


@dataclass(slots=True)  # not frozen: built on every verdict, where a setattr per field shows
class Judgement:
    metric: str
    mode: Mode
    patience: int
    min_delta: float
    epochs: int  # epochs folded (any metric)
    last_epoch: int | None  # the run's last epoch
    best: Best | None
    last: tuple[int, float] | None  # the monitored metric's last (epoch, value)
    since: int | None  # early stopping's epochs without improvement
    stop_epoch: int | None  # the first epoch early stopping would have stopped at
    should_stop: bool
    line: Line | None  # the monitored metric's trend over its window
    regime_epoch: int | None  # the window starts at this learning-rate change
    trend_flat: bool  # the line's change is within its noise
    plateau: bool  # ... and the level is not worse than its best
    overfit: Overfit | None
    diverging: str | None
    non_finite_epoch: int | None
    suspects: dict[str, str]
    logged: list[str]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _g(x: float) -> str:
    return f"{x:.4g}"


def _noise(x: float, level: float) -> str:
    """A noise level; float dust on a noiseless curve shows as 0."""
    return "0" if abs(x) <= 1e-9 * max(abs(level), 1e-300) else _g(x)


def _signed(x: float) -> str:
    return f"{x:+.4g}"


def _plural(n: int, word: str = "epoch") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _best_text(j: Judgement, ended: bool = False) -> str:
    if j.best is None:
        return f"no finite {j.metric} yet"
    text = f"best {j.metric} {_g(j.best.value)} at epoch {j.best.epoch}"
    if j.last is None or j.last[0] <= j.best.epoch:
        return text + (" (the final epoch)" if ended else " (the latest epoch)")
    epoch, value = j.last
    later = _plural(epoch - j.best.epoch)
    if not math.isfinite(value):
        return f"{text}; {'final' if ended else 'now'} {value} at epoch {epoch}, {later} later"
    delta = _signed(value - j.best.value)
    if ended:
        return f"{text}; final {_g(value)} at epoch {epoch} ({delta}, {later} later)"
    return f"{text}, {later} ago (now {_g(value)}, {delta})"


def _trend_text(j: Judgement) -> str | None:
    line = j.line
    if line is None:
        return None
    good = -line.change if j.mode == "min" else line.change
    verdict = "flat within noise" if j.trend_flat else ("improving" if good > 0 else "worsening") + " beyond noise"
    start = f" (since the learning-rate change at epoch {j.regime_epoch})" if j.regime_epoch is not None else ""
    return (f"{j.metric} trend over epochs {line.first}-{line.last}{start}: {_signed(line.slope)}/epoch "
            f"({_signed(line.change)} in all), noise ±{_noise(line.noise, line.level)}: {verdict}")


def _stopping_text(j: Judgement) -> str:
    rule = f"early stopping (patience {j.patience}, min_delta {j.min_delta:g})"
    if j.since is None:
        return f"{rule}: {j.metric} not reported yet"
    if j.last is not None and not math.isfinite(j.last[1]):
        return f"{rule}: stops now, {j.metric} is {j.last[1]} (not finite)"
    text = f"{rule}: {_plural(j.since)} without improvement"
    if j.stop_epoch is not None:
        return f"{text}; it would have stopped at epoch {j.stop_epoch}"
    return f"{text}; it stops after {_plural(j.patience - j.since, 'more epoch')} without one"


def overfit_text(o: Overfit) -> str:
    moved = "fell" if o.mode == "min" else "rose"
    return (f"{o.val} {_g(o.level)} (median of the last {_plural(o.level_epochs)}) is "
            f"{_signed(o.level - o.best_level)} from its best level {_g(o.best_level)} (median of {BEST_SMOOTH} to "
            f"epoch {o.best_epoch}), over {NOISE_Z:g}x its noise ±{_noise(o.noise, o.best_level)}, while "
            f"{o.train} {moved} {_g(o.train_then)} → {_g(o.train_now)}")


def evidence(j: Judgement, ended: bool = False) -> list[str]:
    """The facts behind a verdict, one line each: the best epoch, early stopping, the trend, overfitting,
    divergence, suspect metrics."""
    return _evidence(j, _best_text(j, ended), _trend_text(j), j.overfit and overfit_text(j.overfit))


def _evidence(j: Judgement, best: str, trend: str | None, overfit: str | None) -> list[str]:
    lines = [best, _stopping_text(j)]
    for extra in (trend, overfit, j.diverging):
        if extra:
            lines.append(extra)
    lines += [f"{name} looks wrong: {why}" for name, why in j.suspects.items()]
    return lines


def _first_line(error: str | None) -> str:
    text = (error or "").strip()
    return text.splitlines()[0] if text else "no error text"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "went silent (no sign of life within its heartbeat)"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"went silent at {moment.strftime('%Y-%m-%d %H:%M:%S')} UTC"


def decide(j: Judgement, status: str | None, error: str | None, silent_since: datetime | None) -> dict[str, Any]:
    """Every `TrendFlags` field, as a plain JSON-safe dict (what the read model stores)."""
    status = status or "running"
    ended = status in ("completed", "interrupted", "failed")
    best_epoch = j.best.epoch if j.best else None
    suspect = [f"{k} is {v}" for k, v in j.suspects.items() if k in (j.metric, "train/loss", "val/loss")]
    best_txt = _best_text(j, ended)
    trend = _trend_text(j)
    over_txt = overfit_text(j.overfit) if j.overfit else None
    lines = _evidence(j, best_txt, trend, over_txt) if j.epochs else []
    after = f" after epoch {j.last_epoch}" if j.last_epoch is not None else " before its first epoch"

    def flags(recommendation: str, reason: str, epoch: int | None = best_epoch) -> dict[str, Any]:
        line, last = j.line, j.last
        finite_last = last is not None and math.isfinite(last[1])
        return dict(
            epochs_since_improvement=j.since, is_plateaued=j.plateau, is_overfitting=j.overfit is not None,
            is_diverging=j.diverging is not None, suspect_metrics=j.suspects, should_stop=j.should_stop,
            recommendation=recommendation, recommendation_epoch=epoch, reason=reason, evidence=lines,
            monitor=j.metric, mode=j.mode, patience=j.patience, min_delta=j.min_delta,
            best_epoch=best_epoch, best_value=j.best.value if j.best else None,
            last_epoch=last[0] if last else None, last_value=last[1] if finite_last else None,
            change_since_best=_finite(last[1] - j.best.value) if finite_last and j.best else None,
            epochs_since_best=last[0] - j.best.epoch if last and j.best else None,
            stop_epoch=j.stop_epoch,
            stop_in=max(j.patience - j.since, 0) if j.since is not None and not j.should_stop else None,
            trend=_finite(line.slope) if line else None, noise=_finite(line.noise) if line else None,
            trend_epochs=[line.first, line.last] if line else None, non_finite_epoch=j.non_finite_epoch)

    if status == "failed":
        return flags("investigate", f"the run failed{after}: {_first_line(error)}; {best_txt}")
    if status == "stale":
        return flags("investigate", f"the process {_when(silent_since)}{after}: check whether it still runs; "
                                    f"{best_txt}")
    if not j.epochs:
        return flags("no_data", "no data yet: no epochs logged" if not ended
                     else f"no data: the run was {status} before its first epoch", None)
    if j.last is None:
        return flags("investigate", f"{j.metric} is not among the logged metrics ({', '.join(j.logged)}): "
                                    "monitor one that is", None)
    if suspect:
        return flags("investigate", f"{'; '.join(suspect)}: that looks like a logging bug; {best_txt}")
    if j.diverging:
        if ended:
            return flags("investigate", f"diverged: {j.diverging}; {best_txt}")
        return flags("stop_early", f"stop now, diverging: {j.diverging}; {best_txt}")
    if ended:
        if j.best is None:
            return flags("investigate", f"no finite {j.metric} in the whole run", None)
        if j.best.epoch == j.last[0]:
            tail = "; still improving: more epochs may help" if j.line and not j.trend_flat else ""
            return flags("use_checkpoint", f"the final epoch {j.best.epoch} is the best ({j.metric} "
                                           f"{_g(j.best.value)}){tail}")
        why = f"overfitting: {over_txt}" if over_txt else lines[1]
        return flags("use_checkpoint", f"use epoch {j.best.epoch}'s checkpoint: {best_txt}; {why}")
    if j.overfit:
        use = f"; use epoch {j.best.epoch}'s checkpoint ({j.metric} {_g(j.best.value)})" if j.best else ""
        return flags("stop_early", f"stop now, overfitting: {over_txt}{use}")
    if j.should_stop:
        return flags("stop_early", f"stop now: no {j.metric} improvement over {j.min_delta:g} for "
                                   f"{_plural(j.since or 0)} (patience {j.patience}); {best_txt}"
                                   + (f"; {trend}" if trend else ""))
    if j.plateau:
        return flags("stop_soon", f"stop soon: {trend}; early stopping stops after "
                                  f"{_plural(j.patience - (j.since or 0), 'more epoch')} without improvement; "
                                  f"{best_txt}")
    return flags("continue", f"{best_txt}; {_plural(j.since or 0)} without improvement"
                             + (f"; {trend}" if trend else ""), None)
