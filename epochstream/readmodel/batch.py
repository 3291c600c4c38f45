"""A drained batch split by run, and what is stored of a run between batches. Pure: no database.

An event's identity is its run and `seq` (the producer's id rule: `event_id` is `<run_id>:<seq>`), and
its `digest` a hash of its content. The writer drops an event whose identity is stored with the same
digest (a redelivery, a replay, the same event added twice) and reports one with another digest as a
conflict, before anything is planned: what reaches the planning is new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import orjson

from schemas.registry import Event
from schemas.rollups import Tail
from schemas.trend_state import TrendState

LIFECYCLE = ("run_started", "run_config", "run_finished")
DEFAULT_FUTURE_SKEW = timedelta(days=1)  # Settings.future_skew_s's default (tests and tools that build a writer)


def stream_key(stream_id: str) -> tuple[int, int]:
    """A Redis stream id ("<ms>-<seq>") as a comparable pair."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def newest_id(stream_ids: Iterable[str]) -> str:
    return max(stream_ids, key=stream_key)


@dataclass
class Item:
    stream_id: str
    event: Any  # one of schemas.registry.Event
    ingested_at: datetime  # when the drain took it (the log's `ingested_at`): clamps a clock that runs ahead
    digest: bytes
    order_ts: datetime  # the time it is ordered by: its own ts, or `ingested_at` when that ran too far ahead
    clock_ahead_s: float | None = None  # how far ahead its ts was, when it was clamped


@dataclass
class RunSlice:
    run_id: str
    lifecycle: list[Item] = field(default_factory=list)
    epochs: list[Item] = field(default_factory=list)
    steps: list[Item] = field(default_factory=list)
    system: list[Item] = field(default_factory=list)

    def items(self) -> Iterable[Item]:
        """Every event of the slice, in seq order (as they happened)."""
        return sorted([*self.lifecycle, *self.epochs, *self.steps, *self.system], key=lambda i: i.event.seq)

    def keep(self, wanted: Callable[[Item], bool]) -> None:
        """Drop the items `wanted` refuses; it sees them in seq order (the first of two copies wins)."""
        keep = {id(i) for i in self.items() if wanted(i)}
        for name in ("lifecycle", "epochs", "steps", "system"):
            setattr(self, name, [i for i in getattr(self, name) if id(i) in keep])

    def empty(self) -> bool:
        return not (self.lifecycle or self.epochs or self.steps or self.system)


def _plain(value: Any) -> Any:
    return value.__dict__  # nested models (GPU samples, drop reports) by their fields


def _plain_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value.__dict__


def digest(event: Any) -> bytes:
    """A hash of everything the event says (its model's fields): equal for the same event however it was
    delivered, replayed or read back from the log."""
    fields = {name: event.__dict__.get(name) for name in type(event).model_fields}
    try:
        data = orjson.dumps(fields, default=_plain)
    except TypeError:  # orjson stops at 255 levels of nesting; a config the codec accepted may be deeper
        data = json.dumps(fields, default=_plain_text).encode()
    return hashlib.blake2b(data, digest_size=10).digest()


def order_time(ts: datetime, ingested_at: datetime, future_skew: timedelta) -> tuple[datetime, float | None]:
    """(the time an event is ordered by, how far ahead its own ts was when that is past `future_skew`).

    A producer clock set to the year 9999 must not pin its run to the top of a newest-first listing or keep
    it from ever going stale; its own ts stays stored as sent (the log, the epoch rows), this is for ordering."""
    if ts > ingested_at + future_skew:
        return ingested_at, (ts - ingested_at).total_seconds()
    return ts, None


def slice_by_run(entries: Sequence[tuple[str, Event, datetime]],
                 future_skew: timedelta = DEFAULT_FUTURE_SKEW) -> dict[str, RunSlice]:
    out: dict[str, RunSlice] = {}
    for stream_id, event, ingested_at in entries:
        run = out.get(event.run_id)
        if run is None:
            run = out[event.run_id] = RunSlice(event.run_id)
        item = Item(stream_id, event, ingested_at, digest(event), *order_time(event.ts, ingested_at, future_skew))
        kind = event.type
        if kind == "epoch":
            run.epochs.append(item)
        elif kind == "step":
            run.steps.append(item)
        elif kind == "system":
            run.system.append(item)
        else:
            run.lifecycle.append(item)
    return out


@dataclass
class StoredRun:
    """A run's row as the last commit left it. The fold state and step tail are parsed only when a batch
    needs them, and written back as they were when it does not change them."""

    run_id: str
    summary: dict[str, Any]
    raw_state: str | None
    raw_tail: str | None
    version: int
    epochs_version: int
    steps_version: int
    system_version: int
    damaged: bool = False  # rebuilt from the run's rows after its stored state could not be read
    parsed_state: TrendState | None = None  # set for a damaged run: nothing to parse

    @classmethod
    def parse(cls, row: Sequence[Any]) -> StoredRun:
        (run_id, summary, trend_state, step_tail, version, epochs_version, steps_version, system_version) = row
        return cls(run_id, orjson.loads(summary), trend_state, step_tail, version, epochs_version, steps_version,
                   system_version)

    @cached_property
    def trend_state(self) -> TrendState | None:
        if self.damaged or not self.raw_state:
            return self.parsed_state
        return TrendState.from_dict(orjson.loads(self.raw_state))

    @cached_property
    def _tail_document(self) -> dict[str, Any]:
        return (orjson.loads(self.raw_tail) if self.raw_tail else None) or {}

    @cached_property
    def tail(self) -> Tail:
        return Tail.from_dict(self._tail_document.get("tail"))

    @property
    def tail_meta(self) -> dict[str, Any]:
        return self._tail_document.get("meta", {})


STORED_COLUMNS = "run_id, summary, trend_state, step_tail, version, epochs_version, steps_version, system_version"
