"""Series that no healthy training produces, noticed as each epoch is logged: NaN, all zero, constant.

`series_flag` is the pure rule over one metric's most recent values. `SeriesWatch` keeps those values for
one run and is cheap on the hot path: only a value that is zero, non-finite or equal to the previous one
can start or continue a suspect series, so nothing else is looked at twice.

The workers judge the whole stored history on their own (`schemas.trends.suspect_metrics`); these flags
travel with the epoch (`EpochV2.warnings`) and are logged once by the training process, where someone
can still act on them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import NamedTuple

WINDOW = 5  # epochs of all-zero or constant values before a series is flagged
CONSTANT_OK = frozenset({"learning_rate"})  # a fixed learning rate is a choice, not a bug


class Flag(NamedTuple):
    metric: str
    kind: str  # "nan" | "infinite" | "all_zero" | "constant"
    message: str


def series_flag(metric: str, recent: Sequence[float], window: int = WINDOW) -> Flag | None:
    """The flag for `metric` given its recent values (oldest first, latest last), or None.

    - the latest value is NaN, or ±inf: flagged at once (a loss that is NaN is a dead run);
    - the last `window` values are all zero: the signature of an accumulator that stores zeros;
    - the last `window` values are all equal (and not zero): nothing is being learned, or a value is
      logged that is not updated. `learning_rate` is exempt.
    """
    if not recent:
        return None
    latest = recent[-1]
    if math.isnan(latest):
        return Flag(metric, "nan", f"{metric}: NaN")
    if math.isinf(latest):
        return Flag(metric, "infinite", f"{metric}: {'+' if latest > 0 else '-'}infinite")
    if len(recent) < window:
        return None
    last = list(recent)[-window:]
    if all(v == 0.0 for v in last):
        return Flag(metric, "all_zero", f"{metric}: all zero over {window} epochs")
    if metric not in CONSTANT_OK and all(v == latest for v in last):
        return Flag(metric, "constant", f"{metric}: constant ({latest:.6g}) over {window} epochs")
    return None


class SeriesWatch:
    """The recent values of each metric of one run."""

    def __init__(self, window: int = WINDOW):
        self.window = window
        self._recent: dict[str, deque[float]] = {}

    def update(self, metrics: Mapping[str, float]) -> list[Flag]:
        """Add one epoch's metrics; the flags that hold after it."""
        flags = []
        for name, value in metrics.items():
            recent = self._recent.get(name)
            if recent is None:
                recent = self._recent[name] = deque(maxlen=self.window)
            previous = recent[-1] if recent else None
            recent.append(value)
            if value == 0.0 or value == previous or not math.isfinite(value):
                flag = series_flag(name, recent, self.window)
                if flag is not None:
                    flags.append(flag)
        return flags
