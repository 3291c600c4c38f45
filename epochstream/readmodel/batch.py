"""A drained batch split by run, and what is stored of a run between batches. Pure: no database.

`maybe_applied` marks entries at or below the partition's applied position: a redelivery after a crash
between commit and XACK, or an entry a stale consumer left behind. Those are checked against what is
stored before anything is counted; entries above the position cannot have been applied (the position is
the newest entry any commit held), so they take the fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson

from schemas.registry import Event
from schemas.rollups import Tail
from schemas.trend_state import TrendState

LIFECYCLE = ("run_started", "run_config", "run_finished")


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
    maybe_applied: bool


@dataclass
class RunSlice:
    run_id: str
    lifecycle: list[Item] = field(default_factory=list)
    epochs: list[Item] = field(default_factory=list)
    steps: list[Item] = field(default_factory=list)
    system: list[Item] = field(default_factory=list)

    def items(self) -> Iterable[Item]:
        yield from self.lifecycle
        yield from self.epochs
        yield from self.steps
        yield from self.system


def slice_by_run(entries: Sequence[tuple[str, Event, datetime]], position: str) -> dict[str, RunSlice]:
    applied = stream_key(position)
    # Entries come in stream order: once one is past the position, every later one is too.
    past = False
    out: dict[str, RunSlice] = {}
    for stream_id, event, ingested_at in entries:
        run = out.get(event.run_id)
        if run is None:
            run = out[event.run_id] = RunSlice(event.run_id)
        if not past:
            past = stream_key(stream_id) > applied
        item = Item(stream_id, event, ingested_at, not past)
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


def drop_known(items: list[Item], stored: StoredRun | None, known_ids: Callable[[list[int]], dict[int, str]],
               key: str, last: int | None) -> list[Item]:
    """Without the items that are exactly what is stored (a redelivery, the same event added twice): only
    entries that may be applied, or that are not after the last stored one, are looked up."""
    if stored is None:
        return items
    doubtful = [i for i in items if i.maybe_applied or (last is not None and getattr(i.event, key) <= last)]
    if not doubtful:
        return items
    known = known_ids([getattr(i.event, key) for i in doubtful])
    return [i for i in items if known.get(getattr(i.event, key)) != i.event.event_id]
