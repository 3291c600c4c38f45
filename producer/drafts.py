"""Epoch events are checked by the caller and built by the publisher thread.

`log_epoch` is the one call on the training loop's hot path. It does only what can reject the event
(values to floats, names against the contract's pattern, epoch and samples whole and >= 0), takes the
run's next `seq` and the time, and queues an `EpochDraft`. The pydantic model, the series flags
(`producer.flags`) and the encoding happen on the publisher thread, in queue order, so a run's flags see
its epochs in order and the caller pays a few microseconds instead of the whole validation.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.envelope import METRIC_NAME_PATTERN
from schemas.epoch import EpochV2
from schemas.step import StepV1

_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_known_names: set[str] = set()  # names that passed the pattern once: a set lookup from then on
MAX_METRICS = 512  # as in EpochV2


def check_metrics(metrics: Any) -> dict[str, float]:
    """A new dict of plain floats, or ValueError/TypeError saying which metric is wrong."""
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if name not in _known_names:
            if not isinstance(name, str) or not _METRIC_NAME.match(name):
                raise ValueError(f"metric name {name!r} does not match {METRIC_NAME_PATTERN}")
            if len(_known_names) < 10_000:
                _known_names.add(name)
        kind = type(value)
        if kind is float:
            clean[name] = value
        elif kind is int:
            clean[name] = float(value)
        elif isinstance(value, str | bytes) or value is None:
            raise TypeError(f"metric {name!r} is not a number: {value!r}")
        else:
            item = getattr(value, "item", None)  # NumPy scalars, 0-d tensors (never importing either)
            clean[name] = float(item() if item is not None else value)
    if len(clean) > MAX_METRICS:
        raise ValueError(f"{len(clean)} metrics in one epoch; at most {MAX_METRICS}")
    return clean


def check_count(value: Any, what: str) -> int | None:
    """A whole number >= 0 (ints, whole floats, 0-d tensors), None for None."""
    if value is None:
        return None
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, int):
        value = item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r}")
    return value


class EpochDraft:
    """What `log_epoch` queues; `build()` (on the publisher thread) makes the `EpochV2`. It keeps the run
    (for its id, host, pid, series watch and notices) rather than copies: fewer objects on the hot path."""

    __slots__ = ("run", "run_id", "seq", "ts", "epoch", "metrics", "samples")

    def __init__(self, run: Any, seq: int, ts: float, epoch: int, metrics: dict[str, float], samples: int | None):
        self.run, self.run_id, self.seq, self.ts = run, run.run_id, seq, ts
        self.epoch, self.metrics, self.samples = epoch, metrics, samples

    def build(self) -> EpochV2:
        run = self.run
        flags = run._watch.update(self.metrics)
        for flag in flags:
            run.notices.warn(f"flag-{flag.metric}-{flag.kind}", f"run {self.run_id}: {flag.message}")
        return EpochV2(event_id=f"{self.run_id}:{self.seq}", run_id=self.run_id, seq=self.seq, ts=self.ts,
                       host=run._host, pid=run._pid, epoch=self.epoch, metrics=self.metrics, samples=self.samples,
                       warnings=[flag.message for flag in flags])


class StepDraft:
    """What `log_step` queues; `build()` (on the publisher thread) makes the `StepV1`. Steps carry no series
    flags: a step loss is noisy by nature, and the epoch series are what the flags judge."""

    __slots__ = ("run", "run_id", "seq", "ts", "step", "metrics", "epoch")

    def __init__(self, run: Any, seq: int, ts: float, step: int, metrics: dict[str, float], epoch: int | None):
        self.run, self.run_id, self.seq, self.ts = run, run.run_id, seq, ts
        self.step, self.metrics, self.epoch = step, metrics, epoch

    def build(self) -> StepV1:
        run = self.run
        return StepV1(event_id=f"{self.run_id}:{self.seq}", run_id=self.run_id, seq=self.seq, ts=self.ts,
                      host=run._host, pid=run._pid, step=self.step, epoch=self.epoch, metrics=self.metrics)


DRAFTS = (EpochDraft, StepDraft)


def built(event: Any) -> Any:
    """The event itself, or what a draft builds."""
    return event.build() if isinstance(event, DRAFTS) else event
