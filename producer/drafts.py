"""Epoch and step events are checked by the caller and built by the publisher thread.

`log_epoch` is the one call on the training loop's hot path. It does only what decides what the event
holds (values to floats, names against the contract's pattern, epoch and samples whole and >= 0), takes
the run's next `seq` and the time, and queues an `EpochDraft`. The pydantic model, the series flags
(`producer.flags`) and the encoding happen on the publisher thread, in queue order, so a run's flags see
its epochs in order and the caller pays a few microseconds instead of the whole validation.

A bad value costs only itself (DESIGN invariant 8): `check_metrics` has a fast path for the usual case
(known names, numbers) and falls back to `_check_slowly`, which keeps every good value, sanitises a name
it can (`sanitised`), and counts every drop in the run's `DropLedger` (kinds in `producer.drops`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas.envelope import METRIC_NAME_PATTERN
from schemas.epoch import EpochV2
from schemas.step import StepV1

_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_./:-]")
MAX_NAME = 128
_known_names: set[str] = set()  # names that passed the pattern once: a set lookup from then on
_renames: dict[str, str | None] = {}  # invalid name -> its sanitised form (None: none possible)
_CACHE_LIMIT = 10_000
MAX_METRICS = 512  # as in EpochV2


class _Slow(Exception):
    """The fast path met something it does not handle: check the whole mapping slowly."""


def sanitised(name: str) -> str | None:
    """The documented valid form of an invalid metric name, or None when there is none.

    Every character outside `A-Z a-z 0-9 _ . / : -` becomes `_`; a name that would begin with `.`, `/`,
    `:` or `-` gets a leading `_`; the result is cut to 128 characters. `acc@1` -> `acc_1`,
    `top-1 acc` -> `top-1_acc`, `/loss` -> `_/loss`. The empty name has no valid form.
    """
    if not name:
        return None
    out = _NOT_ALLOWED.sub("_", name)
    if not (out[0].isascii() and (out[0].isalnum() or out[0] == "_")):
        out = "_" + out
    out = out[:MAX_NAME]
    return out if _METRIC_NAME.match(out) else None


def check_metrics(metrics: Any, drops: Any = None, what: str = "epoch", number: Any = None) -> dict[str, float]:
    """A new dict of plain floats: every value that can be kept, under a valid name.

    Drops go to `drops` (a `producer.drops.DropLedger`; None: not counted), described as being of
    `what` `number` ("epoch 3"). Raises TypeError only when `metrics` is not a mapping at all.
    """
    try:
        clean: dict[str, float] = {}
        for name, value in metrics.items():
            if name not in _known_names:
                raise _Slow
            kind = type(value)
            if kind is float:
                clean[name] = value
            elif kind is int:
                clean[name] = float(value)
            elif value is None or isinstance(value, str | bytes):
                raise _Slow
            else:
                item = getattr(value, "item", None)  # NumPy scalars, 0-d tensors (never importing either)
                clean[name] = float(item() if item is not None else value)
        if len(clean) > MAX_METRICS:
            raise _Slow
        return clean
    except Exception:  # noqa: BLE001 - _Slow, or a value float() refuses: sort it out key by key
        return _check_slowly(metrics, drops, what, number)


def _check_slowly(metrics: Any, drops: Any, what: str, number: Any) -> dict[str, float]:
    items = getattr(metrics, "items", None)
    if items is None:
        raise TypeError(f"metrics must be a mapping of name -> number, got {type(metrics).__name__}")
    pairs = list(items())
    valid_names = {n for n, _ in pairs if isinstance(n, str) and _valid(n)}
    where = f"{what} {number}"
    clean: dict[str, float] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not _valid(name):
            name = _renamed(name, valid_names, clean, drops, where)
            if name is None:
                continue
        number_ = _number(name, value, drops, where)
        if number_ is not None:
            clean[name] = number_[0]
    if len(clean) > MAX_METRICS:
        names = list(clean)
        extra = names[MAX_METRICS:]
        _add(drops, "too_many", len(extra), None,
             lambda: f"{where}: {len(names)} metrics, at most {MAX_METRICS} per event: {len(extra)} dropped "
                     f"({', '.join(repr(n) for n in extra[:5])}{', ...' if len(extra) > 5 else ''})")
        clean = {n: clean[n] for n in names[:MAX_METRICS]}
    return clean


def _valid(name: str) -> bool:
    if name in _known_names:
        return True
    if not _METRIC_NAME.match(name):
        return False
    if len(_known_names) < _CACHE_LIMIT:
        _known_names.add(name)
    return True


def _renamed(name: Any, valid_names: set[str], clean: dict[str, float], drops: Any, where: str) -> str | None:
    """The sanitised name to keep the value under (counted as `renamed`), or None (counted as `invalid_name`)."""
    if not isinstance(name, str):
        _add(drops, "invalid_name", 1, ("type", type(name).__name__),
             lambda: f"metric name {name!r} ({where}) is not a string: dropped")
        return None
    if name in _renames:
        new = _renames[name]
    else:
        new = sanitised(name)
        if len(_renames) < _CACHE_LIMIT:
            _renames[name] = new
    if new is None:
        _add(drops, "invalid_name", 1, name, lambda: f"metric name {name!r} ({where}) has no valid form: dropped")
        return None
    if new in valid_names or new in clean:
        _add(drops, "invalid_name", 1, name,
             lambda: f"metric name {name!r} ({where}) would be renamed to {new!r}, which is already logged: dropped")
        return None
    _add(drops, "renamed", 1, name, lambda: f"{name!r} renamed to {new!r}")
    return new


def _number(name: str, value: Any, drops: Any, where: str) -> tuple[float] | None:
    """(the value as a float,) or None when it is not a number (counted)."""
    if value is None:
        _add(drops, "missing", 1, name, lambda: f"{name!r} was None ({where}): dropped")
        return None
    try:
        if isinstance(value, str | bytes):
            raise TypeError("text")
        item = getattr(value, "item", None)
        plain = item() if item is not None else value
        if isinstance(plain, str | bytes):
            raise TypeError("text")
        return (float(plain),)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a number
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        _add(drops, "not_a_number", 1, name,
             lambda: f"{name!r} is not a number ({where}: {shown}, {type(value).__name__}): dropped")
        return None


def _add(drops: Any, kind: str, count: int, key: Any, example: Any) -> None:
    if drops is not None:
        drops.add(kind, count, key, example)


def check_count(value: Any, what: str) -> int | None:
    """A whole number >= 0 (ints, whole floats, 0-d tensors), None for None; ValueError otherwise."""
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


MAX_STEP = 2**62  # as in StepV1


def check_number(value: Any, what: str, limit: int | None = None) -> int:
    """A whole number >= 0 (and <= limit) for an event's own number; ValueError otherwise, None included."""
    number = check_count(value, what)
    if number is None or (limit is not None and number > limit):
        raise ValueError(f"{what} must be a whole number >= 0{f' and <= {limit}' if limit else ''}, got {value!r}")
    return number


@dataclass(frozen=True, slots=True, weakref_slot=True)
class RunIdentity:
    """What the publisher thread knows of a run, fixed when the run (attempt) starts: its id, the seq before
    its first event (which attempt it is, `producer.attempts`), where it runs, and whether it started
    without being able to ask if its explicit id had events. Drafts and the publisher's routes hold this,
    never the `Run`: nothing on the publisher thread can reach into the training side's state.

    The three ledgers are the run's own, shared on purpose (each is safe to use from both threads): where
    the publisher counts what it drops (`drops`), the epoch series flags it updates in queue order
    (`watch`), and the notices that log each kind of problem once."""

    run_id: str
    seq_start: int
    host: str
    pid: int
    drops: Any  # producer.drops.DropLedger
    watch: Any  # producer.flags.SeriesWatch
    notices: Any  # producer.notices.Notices
    unchecked_reuse: bool = False


class EpochDraft:
    """What `log_epoch` queues; `build()` (on the publisher thread) makes the `EpochV2`."""

    __slots__ = ("identity", "run_id", "seq", "ts", "epoch", "metrics", "samples")

    def __init__(self, identity: RunIdentity, seq: int, ts: float, epoch: int, metrics: dict[str, float],
                 samples: int | None):
        self.identity, self.run_id, self.seq, self.ts = identity, identity.run_id, seq, ts
        self.epoch, self.metrics, self.samples = epoch, metrics, samples

    def build(self) -> EpochV2:
        identity = self.identity
        flags = identity.watch.update(self.metrics)
        for flag in flags:
            identity.notices.warn(f"flag-{flag.metric}-{flag.kind}", f"run {self.run_id}: {flag.message}")
        return EpochV2(event_id=f"{self.run_id}:{self.seq}", run_id=self.run_id, seq=self.seq, ts=self.ts,
                       host=identity.host, pid=identity.pid, epoch=self.epoch, metrics=self.metrics,
                       samples=self.samples, warnings=[flag.message for flag in flags])


class StepDraft:
    """What `log_step` queues; `build()` (on the publisher thread) makes the `StepV1`. Steps carry no series
    flags: a step loss is noisy by nature, and the epoch series are what the flags judge."""

    __slots__ = ("identity", "run_id", "seq", "ts", "step", "metrics", "epoch")

    def __init__(self, identity: RunIdentity, seq: int, ts: float, step: int, metrics: dict[str, float],
                 epoch: int | None):
        self.identity, self.run_id, self.seq, self.ts = identity, identity.run_id, seq, ts
        self.step, self.metrics, self.epoch = step, metrics, epoch

    def build(self) -> StepV1:
        identity = self.identity
        return StepV1(event_id=f"{self.run_id}:{self.seq}", run_id=self.run_id, seq=self.seq, ts=self.ts,
                      host=identity.host, pid=identity.pid, step=self.step, epoch=self.epoch, metrics=self.metrics)


class Built:
    """Any other event of a run (`Run._emit` builds it on the caller's thread), queued with its run's
    identity: the publisher routes it to the run's attempt and counts what it drops in the run's ledger."""

    __slots__ = ("identity", "run_id", "event")

    def __init__(self, identity: RunIdentity, event: Any):
        self.identity, self.run_id, self.event = identity, identity.run_id, event

    def build(self) -> Any:
        return self.event


DRAFTS = (EpochDraft, StepDraft, Built)


def built(event: Any) -> Any:
    """The event itself, or what a draft builds."""
    return event.build() if isinstance(event, DRAFTS) else event


def identity_of(event: Any) -> RunIdentity | None:
    """The run identity a queued item carries (None for a bare event model)."""
    return getattr(event, "identity", None)
