"""The trend judgement folded epoch by epoch: what the read model keeps per run instead of rescanning.

`fold(state, rows, config)` takes rows in increasing epoch order, all after `state.last_epoch`, and returns
the new state; `verdict(state, config, status, error)` turns a state into `TrendFlags`. Folding a whole
history at once and folding it in any number of in-order pieces give the same state, so
`schemas.trends.recommendation(history)` (fold everything, then judge) is exactly what the read model
stores. A row that is not after `last_epoch` (a rewind, a late redelivery) or a new `config.key()` needs
a fold from scratch over the run's history: the caller's job (`needs_refold`).

The state is JSON-safe by construction (a non-finite value is kept as the text "nan", "inf" or "-inf"),
so it is stored with orjson and read back without a custom decoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.read_models import TrendFlags
from schemas.trend_rules import (
    CONSTANT_OK,
    DEFAULT_METRIC,
    DIVERGENCE_FACTOR,
    FALLBACK_METRIC,
    Best,
    EpochRow,
    Mode,
    TrendConfig,
    better,
)

STATE_VERSION = 2  # bump when the state's shape or a definition changes: stored states are then refolded

_TEXT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _safe(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _real(value: float | str | None) -> float | None:
    return _TEXT[value] if isinstance(value, str) else value


class TrendState:
    """Per run: per-metric statistics, the early-stopping reference of the candidate metrics, and the last
    `window` + 1 epochs that had both losses. Treat as opaque outside this module (`to_dict`/`from_dict`)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None):
        self.data = data if data is not None else {
            "v": STATE_VERSION, "config": None, "last_epoch": None, "epochs": 0,
            "stats": {},  # metric -> see _fold_stat
            "refs": {},  # metric -> [reference value, epochs since improvement]  (early stopping)
            "both": [],  # last window+1 [epoch, train/loss, val/loss] with both finite
            "val_min_both": None,  # lowest val/loss among rows that had both losses
            "last": None,  # the last epoch's metrics (JSON-safe)
        }

    # -- storage ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrendState | None:
        """None when `data` is missing or from another state version (then refold)."""
        if not data or data.get("v") != STATE_VERSION:
            return None
        return cls(dict(data))

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def last_epoch(self) -> int | None:
        return self.data["last_epoch"]

    @property
    def epochs(self) -> int:
        return self.data["epochs"]

    def has(self, metric: str) -> bool:
        return metric in self.data["stats"]

    def monitored(self, config: TrendConfig) -> str:
        """The monitored metric: the configured one, else `val/loss` once the run has it, else `train/loss`."""
        if config.monitor is not None:
            return config.monitor
        return DEFAULT_METRIC if self.has(DEFAULT_METRIC) else FALLBACK_METRIC

    def best(self, metric: str, mode: Mode) -> Best | None:
        """The earliest epoch with the lowest (min) or highest (max) finite value of `metric`."""
        stat = self.data["stats"].get(metric)
        if stat is None:
            return None
        value, epoch = (stat[3], stat[4]) if mode == "min" else (stat[5], stat[6])
        return None if value is None else Best(epoch, value, metric, mode)

    def since_improvement(self, metric: str) -> int | None:
        ref = self.data["refs"].get(metric)
        return None if ref is None or ref[1] is None else ref[1]

    def last_value(self, metric: str) -> tuple[int, float] | None:
        stat = self.data["stats"].get(metric)
        return None if stat is None else (stat[10], _real(stat[9]))

    def last_metrics(self) -> dict[str, float]:
        last = self.data["last"] or {}
        return {k: _real(v) for k, v in last.items()}


def _candidates(config: TrendConfig) -> dict[str, Mode]:
    """Metrics whose early-stopping reference is kept: the configured one, or both defaults."""
    if config.monitor is not None:
        return {config.monitor: config.mode_of(config.monitor)}
    return {DEFAULT_METRIC: "min", FALLBACK_METRIC: "min"}


def needs_refold(state: TrendState | None, first_epoch: int, config: TrendConfig) -> bool:
    """True when rows starting at `first_epoch` cannot simply be folded onto `state`."""
    if state is None:
        return False
    last = state.last_epoch
    return state.data["config"] != list(config.key()) or (last is not None and first_epoch <= last)


def _fold_stat(stats: dict[str, list], name: str, value: float, epoch: int) -> None:
    """One value into the metric's statistics (the hot loop of the read model: kept branch-light).

    stat = [n, n_nan, n_zero, lo, lo_epoch, hi, hi_epoch, first (JSON-safe), all_same, last (JSON-safe),
    last_epoch]; lo/hi over finite values only; all_same: every value so far equals the first (no NaN)."""
    stat = stats.get(name)
    finite = value - value == 0.0  # False for NaN and for +-inf
    shown = value if finite else _safe(value)
    if stat is None:
        nan = value != value
        stats[name] = [1, int(nan), int(value == 0), value if finite else None, epoch if finite else None,
                       value if finite else None, epoch if finite else None, shown, not nan, shown, epoch]
        return
    stat[0] += 1
    if value != value:
        stat[1] += 1
        stat[8] = False
    else:
        if value == 0:
            stat[2] += 1
        if stat[8] and shown != stat[7]:
            stat[8] = False
        if finite:
            lo = stat[3]
            if lo is None or value < lo:
                stat[3], stat[4] = value, epoch
            hi = stat[5]
            if hi is None or value > hi:
                stat[5], stat[6] = value, epoch
    stat[9], stat[10] = shown, epoch


def _fold_ref(refs: dict[str, list], name: str, value: float, mode: Mode, min_delta: float) -> None:
    ref = refs.setdefault(name, [None, None])
    if math.isfinite(value) and (ref[0] is None or better(value, ref[0], mode, min_delta)):
        ref[0], ref[1] = value, 0
    elif ref[1] is not None:
        ref[1] += 1


def fold(state: TrendState | None, rows: Iterable[EpochRow], config: TrendConfig) -> TrendState:
    """Fold `rows` (increasing epochs, all after `state.last_epoch`) into `state`, in place (it is the
    caller's: the read model loads a fresh one per batch), and return it; a new state when None."""
    out = TrendState() if state is None else state
    data = out.data
    data["config"] = list(config.key())
    stats, refs, both = data["stats"], data["refs"], data["both"]
    candidates = _candidates(config)
    min_delta = config.min_delta_or_default
    keep = config.window + 1
    row = None
    for row in rows:
        epoch, metrics = row.epoch, row.metrics
        for name, value in metrics.items():
            _fold_stat(stats, name, value, epoch)
        for name, mode in candidates.items():
            if name in metrics:
                _fold_ref(refs, name, metrics[name], mode, min_delta)
        train, val = metrics.get(FALLBACK_METRIC), metrics.get(DEFAULT_METRIC)
        if train is not None and val is not None and math.isfinite(train) and math.isfinite(val):
            both.append([epoch, train, val])
            del both[:-keep]
            if data["val_min_both"] is None or val < data["val_min_both"]:
                data["val_min_both"] = val
        data["last_epoch"] = epoch
        data["epochs"] += 1
    if row is not None:
        data["last"] = {k: _safe(v) for k, v in row.metrics.items()}
    return out


# -- judging a state -------------------------------------------------------------------------------------
def overfitting_evidence(state: TrendState, window: int) -> str | None:
    both = state.data["both"]
    if len(both) < window + 1:
        return None
    (e0, t0, v0), (e1, t1, v1) = both[-window - 1], both[-1]
    if v1 > v0 and t1 < t0 and v1 > state.data["val_min_both"]:
        return (f"val/loss rose {v0:.4g} -> {v1:.4g} (+{v1 - v0:.3g}) while train/loss fell "
                f"{t0:.4g} -> {t1:.4g} ({t1 - t0:.3g}) over epochs {e0}-{e1}")
    return None


def divergence_evidence(state: TrendState, metric: str, factor: float = DIVERGENCE_FACTOR) -> str | None:
    for name in dict.fromkeys([metric, FALLBACK_METRIC]):
        last = state.last_value(name)
        if last is None:
            continue
        epoch, value = last
        if not math.isfinite(value):
            return f"{name} is {value} at epoch {epoch}"
        best = state.best(name, "min")
        if best is not None and best.value > 0 and value > factor * best.value:
            return (f"{name} is {value:.4g} at epoch {epoch}, more than {factor:g}x its best "
                    f"{best.value:.4g} (epoch {best.epoch})")
    return None


def suspect_metrics(state: TrendState) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, (n, n_nan, n_zero, *_, all_same, _last, _last_epoch) in state.data["stats"].items():
        if n_nan == n:
            found[name] = "all_nan"
        elif n >= 2 and n_zero == n:
            found[name] = "all_zero"
        elif n >= 3 and all_same and name not in CONSTANT_OK:
            found[name] = "constant"
    return {name: found[name] for name in sorted(found)} if len(found) > 1 else found


def verdict(state: TrendState, config: TrendConfig, status: str | None = None,
            error: str | None = None) -> TrendFlags:
    """All flags plus what to do: investigate > use_checkpoint (overfitting) > stop_early (plateau) > continue.

    A failed run is always `investigate`: the curves may look healthy, but a crashed run cannot continue.
    `reason` names the epochs and deltas behind the verdict.
    """
    return TrendFlags(**verdict_fields(state, config, status, error))


def verdict_fields(state: TrendState, config: TrendConfig, status: str | None = None,
                   error: str | None = None) -> dict[str, Any]:
    """`verdict` as the plain dict the read model stores (building the model would double its cost)."""
    metric = state.monitored(config)
    mode = config.mode_of(metric)
    patience, min_delta = config.patience_or_default, config.min_delta_or_default
    best = state.best(metric, mode)
    since = state.since_improvement(metric)
    plateau = since is not None and since >= patience
    overfit = overfitting_evidence(state, config.window)
    diverging = divergence_evidence(state, metric)
    suspects = suspect_metrics(state)
    last = state.last_value(metric)
    flags = dict(epochs_since_improvement=since, is_plateaued=plateau, is_overfitting=overfit is not None,
                 is_diverging=diverging is not None, suspect_metrics=suspects,
                 should_stop=plateau or (last is not None and not math.isfinite(last[1])))
    make = dict
    best_txt = f"best {metric} {best.value:.4g} at epoch {best.epoch}" if best else f"no finite {metric} yet"
    if status == "failed":
        first_line = (error or "no error text").strip().splitlines()[0] if (error or "").strip() else "no error text"
        return make(**flags, recommendation="investigate", recommendation_epoch=best.epoch if best else None,
                    reason=f"the run failed: {first_line}; {best_txt}")
    if not state.epochs:
        return make(**flags, recommendation="continue", recommendation_epoch=None, reason="no epochs yet")
    if diverging or metric in suspects or FALLBACK_METRIC in suspects:
        why = diverging or "; ".join(f"{k} is {v}" for k, v in suspects.items())
        return make(**flags, recommendation="investigate", reason=f"{why}; {best_txt}",
                    recommendation_epoch=best.epoch if best else None)
    if overfit and best is not None:
        return make(**flags, recommendation="use_checkpoint", recommendation_epoch=best.epoch,
                    reason=f"{overfit}; {best_txt}")
    if plateau and best is not None:
        return make(**flags, recommendation="stop_early", recommendation_epoch=best.epoch,
                    reason=f"no {metric} improvement over {min_delta:g} for {since} epochs; {best_txt}")
    extra = f"; suspect: {', '.join(f'{k} {v}' for k, v in suspects.items())}" if suspects else ""
    return make(**flags, recommendation="continue", recommendation_epoch=None,
                reason=f"{best_txt}, {since or 0} epochs since improvement{extra}")
