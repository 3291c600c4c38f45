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
    out: dict[str, RunSlice] = {}
    for stream_id, event, ingested_at in entries:
        run = out.get(event.run_id)
        if run is None:
            run = out[event.run_id] = RunSlice(event.run_id)
        item = Item(stream_id, event, ingested_at, stream_key(stream_id) <= applied)
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
    """A run's row as the last commit left it (parsed)."""

    run_id: str
    summary: dict[str, Any]
    trend_state: TrendState | None
    tail: Tail
    tail_meta: dict[str, Any]  # last_step, last_seq of steps
    version: int
    epochs_version: int
    steps_version: int
    system_version: int
    damaged: bool = False  # rebuilt from the run's rows after its stored state could not be read

    @classmethod
    def parse(cls, row: Sequence[Any]) -> StoredRun:
        (run_id, summary, trend_state, step_tail, version, epochs_version, steps_version, system_version) = row
        tail_doc = orjson.loads(step_tail) if step_tail else {}
        return cls(run_id, orjson.loads(summary), TrendState.from_dict(orjson.loads(trend_state))
                   if trend_state else None, Tail.from_dict(tail_doc.get("tail")), tail_doc.get("meta", {}),
                   version, epochs_version, steps_version, system_version)


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
