"""The trend judgement folded epoch by epoch: what the read model keeps per run instead of rescanning.

`fold(state, rows, config)` takes rows in increasing epoch order, all after `state.last_epoch`, folds them
into `state` in place and returns it; `verdict(state, config, status, error, silent_since=)` turns a state
into `TrendFlags` (`verdict_fields`: the same as a plain dict). Folding a whole history at once and
folding it in any number of in-order pieces give the same state, so `schemas.trends.recommendation` (fold
everything, then judge) is exactly what the read model stores. A row that is not after `last_epoch` (a
rewind, a late redelivery) or a new `config.key()` needs a fold from scratch over the run's history: the
caller's job (`needs_refold`).

What the state keeps is bounded by the number of metrics plus a fixed window, never by history length:
per metric a dozen counters; for the monitored metric and both losses their last 2 x `window` finite
values; for the (train, validation) pairs the last 2 x `window` epochs with both, and the best levels
seen (since the last learning-rate step). Every noise-aware statistic of the verdict is computed from
those (README, "Trend flags"); the trend line and the noise estimates a verdict needs are computed once
per fold and kept too, so that a verdict on a stored state (the API's, on reads) is lookups and wording.

The state is JSON-safe by construction (a non-finite value is kept as the text "nan", "inf" or "-inf"),
so it is stored with orjson and read back without a custom decoder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas.read_models import TrendFlags
from schemas.trend_judge import judge
from schemas.trend_layout import (
    ALL_SAME,
    BAD_E,
    BAD_SINCE,
    FIRST,
    HI,
    HI_E,
    LAST,
    LAST_E,
    LO,
    LO_E,
    N_NAN,
    N_ZERO,
    OK,
    OK_E,
    N,
    real,
    safe,
)
from schemas.trend_rules import (
    BEST_SMOOTH,
    DEFAULT_METRIC,
    FALLBACK_METRIC,
    LR_METRIC,
    LR_STEP,
    MIN_WINDOW,
    Best,
    EpochRow,
    Mode,
    TrendConfig,
    better,
    train_counterpart,
)
from schemas.trend_stats import median
from schemas.trend_words import decide

__all__ = ["STATE_VERSION", "TrendState", "fold", "judge", "needs_refold", "verdict", "verdict_fields"]

STATE_VERSION = 4  # bump when the state's shape or a definition changes: stored states are then refolded


class TrendState:
    """Per run: per-metric statistics, the early-stopping counters of the candidate metrics, recent windows.
    Treat as opaque outside this module (`to_dict`/`from_dict`)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None):
        self.data = data if data is not None else {
            "v": STATE_VERSION, "config": None, "last_epoch": None, "epochs": 0,
            "stats": {},  # metric -> [n, n_nan, n_zero, lo, lo_e, hi, hi_e, first, all the same as first,
            #                          last, last_e, first non-finite epoch, epoch since which it is
            #                          non-finite, last finite value, its epoch]  (see _fold_stat)
            "refs": {},  # metric -> [best so far, epochs since improvement, first epoch early stopping stops]
            # Since the last learning-rate step (a new regime: what came before says little about now):
            "win": {},  # metric -> [e0, v0, e1, v1, ...]: its last `window` finite values
            "lvl": {},  # candidate -> [best level (median of BEST_SMOOTH), epoch]
            "pairs": {},  # validation metric -> [train metric, [e, t, v, ...] last `window` with both finite,
            #                                     best validation level, its epoch, the training level then]
            "lr": None,  # [last learning rate, epoch of its last step change]
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

    def copy(self) -> TrendState:
        """A copy that folding can change without touching this one (the mutable parts, copied)."""
        data = self.data
        return TrendState({**data, "stats": {k: list(v) for k, v in data["stats"].items()},
                           "refs": {k: list(v) for k, v in data["refs"].items()},
                           "win": {k: list(v) for k, v in data["win"].items()},
                           "lvl": {k: list(v) for k, v in data["lvl"].items()},
                           "pairs": {k: [v[0], list(v[1]), *v[2:]] for k, v in data["pairs"].items()},
                           "lr": list(data["lr"]) if data["lr"] else None})

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
        value, epoch = (stat[LO], stat[LO_E]) if mode == "min" else (stat[HI], stat[HI_E])
        return None if value is None else Best(epoch, value, metric, mode)

    def since_improvement(self, metric: str) -> int | None:
        """Keras's `wait`: epochs reporting `metric` since it last improved on its best by more than
        min_delta (all of them, while it never had a finite value). None when it was never reported."""
        ref = self.data["refs"].get(metric)
        return None if ref is None else ref[1]

    def stop_epoch(self, metric: str) -> int | None:
        """The first epoch at which early stopping on `metric` would have stopped the run."""
        ref = self.data["refs"].get(metric)
        return None if ref is None else ref[2]

    def last_value(self, metric: str) -> tuple[int, float] | None:
        stat = self.data["stats"].get(metric)
        return None if stat is None else (stat[LAST_E], real(stat[LAST]))

    def last_metrics(self) -> dict[str, float]:
        last = self.data["last"] or {}
        return {k: real(v) for k, v in last.items()}

    def window(self, metric: str) -> tuple[list[int], list[float]]:
        """The last `window` finite (epoch, value) of a tracked metric (the monitored one and both losses)
        since the last learning-rate step."""
        flat = self.data["win"].get(metric) or []
        return flat[0::2], flat[1::2]


@functools.lru_cache(maxsize=1024)
def _tracked(config: TrendConfig) -> tuple[dict[str, Mode], list[str], dict[str, tuple[str, Mode]]]:
    """(early-stopping candidates, metrics with a window, validation metric -> (training metric, mode)).
    Cached (a batch folds one row onto each of thousands of runs with a handful of configs); read-only."""
    if config.monitor is not None:
        candidates = {config.monitor: config.mode_of(config.monitor)}
    else:
        candidates = {DEFAULT_METRIC: "min", FALLBACK_METRIC: "min"}
    windows = list(dict.fromkeys([*candidates, FALLBACK_METRIC, DEFAULT_METRIC]))
    pairs = {DEFAULT_METRIC: (FALLBACK_METRIC, "min")}
    train = train_counterpart(config.monitor) if config.monitor else None
    if train is not None and config.monitor not in pairs:
        pairs[config.monitor] = (train, config.mode_of(config.monitor))
    return candidates, windows, pairs


def needs_refold(state: TrendState | None, first_epoch: int, config: TrendConfig) -> bool:
    """True when rows starting at `first_epoch` cannot simply be folded onto `state`."""
    if state is None:
        return False
    last = state.last_epoch
    return state.data["config"] != list(config.key()) or (last is not None and first_epoch <= last)


def _fold_stat(stats: dict[str, list], name: str, value: float, epoch: int) -> None:
    """One value into the metric's statistics: the read model's hot loop, kept branch-light. lo/hi over
    finite values; `first`, `last` JSON-safe; all the same: every value so far equals the first (no NaN)."""
    stat = stats.get(name)
    finite = value - value == 0.0  # False for NaN and for +-inf
    shown = value if finite else safe(value)
    if stat is None:
        nan = value != value
        stats[name] = [1, int(nan), int(value == 0), value if finite else None, epoch if finite else None,
                       value if finite else None, epoch if finite else None, shown, not nan, shown, epoch,
                       None if finite else epoch, None if finite else epoch, value if finite else None,
                       epoch if finite else None]
        return
    stat[N] += 1
    if value != value:
        stat[N_NAN] += 1
        stat[ALL_SAME] = False
    else:
        if value == 0:
            stat[N_ZERO] += 1
        if stat[ALL_SAME] and shown != stat[FIRST]:
            stat[ALL_SAME] = False
    if finite:
        lo = stat[LO]
        if lo is None or value < lo:
            stat[LO], stat[LO_E] = value, epoch
        hi = stat[HI]
        if hi is None or value > hi:
            stat[HI], stat[HI_E] = value, epoch
        stat[BAD_SINCE], stat[OK], stat[OK_E] = None, value, epoch
    else:
        if stat[BAD_E] is None:
            stat[BAD_E] = epoch
        if stat[BAD_SINCE] is None:
            stat[BAD_SINCE] = epoch
    stat[LAST], stat[LAST_E] = shown, epoch


def _fold_ref(ref: list, value: float, epoch: int, mode: Mode, min_delta: float, patience: int) -> None:
    # Keras: wait += 1, back to 0 on an improvement; a non-finite value is never one. Lightning's
    # check_finite stops at once on a non-finite value.
    finite = math.isfinite(value)
    if finite and (ref[0] is None or better(value, ref[0], mode, min_delta)):
        ref[0], ref[1] = value, 0
    else:
        ref[1] += 1
    if ref[2] is None and (not finite or ref[1] >= patience):
        ref[2] = epoch


def _fold_level(level: list, values: list[float], epoch: int, mode: Mode) -> None:
    if len(values) >= BEST_SMOOTH:
        now = median(values[-BEST_SMOOTH:])
        if level[0] is None or better(now, level[0], mode):
            level[0], level[1] = now, epoch


def _fold_pair(pair: list, epoch: int, train: float, val: float, mode: Mode, keep: int) -> None:
    flat = pair[1]
    flat += (epoch, train, val)
    del flat[:-3 * keep]
    if len(flat) >= 3 * BEST_SMOOTH:
        now = median(flat[-1::-3][:BEST_SMOOTH])
        if pair[2] is None or better(now, pair[2], mode):
            pair[2], pair[3], pair[4] = now, epoch, median(flat[-2::-3][:BEST_SMOOTH])


def _new_regime(data: dict[str, Any], metrics: Mapping[str, float], epoch: int) -> None:
    """A learning rate that moved by LR_STEP or more since the last epoch starts a new regime: the windows
    and smoothed bests start again (the counters and the raw bests do not)."""
    lr = metrics.get(LR_METRIC)
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return
    prev = data["lr"]
    if prev is None:
        data["lr"] = [lr, None]
        return
    if max(lr / prev[0], prev[0] / lr) >= LR_STEP:
        prev[1] = epoch
        data["win"], data["lvl"], data["pairs"] = {}, {}, {}
    prev[0] = lr


def fold(state: TrendState | None, rows: Iterable[EpochRow], config: TrendConfig) -> TrendState:
    """Fold `rows` (increasing epochs, all after `state.last_epoch`) into `state`, in place (it is the
    caller's: the read model loads a fresh one per batch; `state.copy()` keeps one), and return it; a new
    state when None."""
    out = TrendState() if state is None else state
    data = out.data
    data["config"] = list(config.key())
    stats, refs = data["stats"], data["refs"]
    candidates, windows, pair_names = _tracked(config)
    min_delta, patience = config.min_delta_or_default, config.patience_or_default
    keep = 2 * max(config.window, MIN_WINDOW)  # the noise is judged over twice the trend's window
    last = None
    for row in rows:
        epoch, metrics = row.epoch, row.metrics
        for name, value in metrics.items():
            _fold_stat(stats, name, value, epoch)
        for name, mode in candidates.items():
            if name in metrics:
                _fold_ref(refs.setdefault(name, [None, 0, None]), metrics[name], epoch, mode, min_delta, patience)
        _new_regime(data, metrics, epoch)
        wins = data["win"]
        for name in windows:
            value = metrics.get(name)
            if value is not None and math.isfinite(value):
                flat = wins.setdefault(name, [])
                flat += (epoch, value)
                del flat[:-2 * keep]
                if name in candidates:
                    _fold_level(data["lvl"].setdefault(name, [None, None]), flat[1::2], epoch, candidates[name])
        for val_name, (train_name, mode) in pair_names.items():
            train, val = metrics.get(train_name), metrics.get(val_name)
            if train is not None and val is not None and math.isfinite(train) and math.isfinite(val):
                _fold_pair(data["pairs"].setdefault(val_name, [train_name, [], None, None, None]), epoch, train,
                           val, mode, keep)
        data["last_epoch"] = epoch
        data["epochs"] += 1
        last = metrics
    if last is not None:
        data["last"] = {k: v if v - v == 0.0 else safe(v) for k, v in last.items()}  # safe() only when needed
    return out


def verdict(state: TrendState, config: TrendConfig, status: str | None = None, error: str | None = None, *,
            silent_since: datetime | None = None) -> TrendFlags:
    """All flags plus what to do, fitted to the run's status (README, "Trend flags"):

    `running` -> continue / stop_soon / stop_early (stop now, with why) / investigate (suspect numbers);
    `completed` or `interrupted` -> use_checkpoint (the best epoch, or the final one when it is the best) /
    investigate (diverged, suspect); `failed` -> investigate with the error's first line; `stale` ->
    investigate: the process went silent at `silent_since`; no epochs -> no_data. `reason` and
    `evidence` quote the numbers that decided.
    """
    return TrendFlags(**decide(judge(state, config), status, error, silent_since))


def verdict_fields(state: TrendState, config: TrendConfig, status: str | None = None, error: str | None = None, *,
                   silent_since: datetime | None = None) -> dict[str, Any]:
    """`verdict` as the plain dict the read model stores: every `TrendFlags` field, JSON-safe (building
    the model would double the cost)."""
    return decide(judge(state, config), status, error, silent_since)
