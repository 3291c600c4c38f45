"""Several framework calls for one step (or one epoch) -> one event. Pure: the caller says how to emit.

A re-logged step or epoch replaces the earlier one whole (`schemas.step`: "a re-logged step replaces the
old one"), and frameworks log one step in several calls: Lightning's learning-rate monitor and the
training step's own values arrive separately, with the same step number; its validation and training
epoch-end values arrive separately for the same epoch. So values are gathered per key (the step or the
epoch number) and emitted as one event when a call for another key comes, or at `flush()`. A key that
comes back after it was emitted is emitted again holding everything logged for it, so the replacement
loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class Pending:
    """The values gathered for the current key; `emit(key, metrics, extra)` is called once per event."""

    def __init__(self, emit: Callable[[int, dict[str, float], int | None], None]):
        self._emit = emit
        self.key: int | None = None
        self.metrics: dict[str, float] = {}
        self.extra: int | None = None  # a step's epoch
        self._last_key: int | None = None
        self._last: dict[str, float] = {}
        self._last_extra: int | None = None

    def add(self, key: int, metrics: Mapping[str, float], extra: int | None = None) -> None:
        """Gather `metrics` for `key`; the values gathered for the previous key are emitted first."""
        if key != self.key:
            self.flush()
            self.key = key
            if key == self._last_key:  # emitted already: the new event must hold the earlier values too
                self.metrics, self.extra = dict(self._last), self._last_extra
        self.metrics.update(metrics)
        if self.extra is None:
            self.extra = extra

    def flush(self) -> None:
        """Emit what is gathered (if anything) and start empty."""
        key, metrics, extra = self.key, self.metrics, self.extra
        self.key, self.metrics, self.extra = None, {}, None
        if key is not None and metrics:
            self._last_key, self._last, self._last_extra = key, metrics, extra
            self._emit(key, metrics, extra)
