"""Planning a run's step rows and their rollups for one batch.

Same rules as epochs (for one step number the highest seq wins; an attempt hides earlier attempts' steps
from the first step it logs), but a run may have millions of steps, so nothing here reads them all:
- the common case — steps after the last one — appends rows with the next ordinals and folds them into
  the rollup tail (`schemas.rollups.append`): constant cost per step;
- a late, repeated or rewound step rewrites the *suffix* of the series from the first step it changes:
  rows, ordinals and the rollup buckets that cover them, rebuilt from the unchanged buckets before it.
Each attempt's lowest step (`hides`, kept with the tail) is what hides earlier attempts' rows; it is
looked up in the stored steps only when an attempt boundary is first seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from epochstream.readmodel.batch import Item, RunSlice, StoredRun
from epochstream.readmodel.lookup import Lookup, StoredStep
from epochstream.readmodel.values import json_text, metrics_from_json, metrics_json, to_us
from epochstream.readmodel.writes import Writes
from schemas.rollups import LEVELS, MIN_LEVEL, Tail, append, merge_all, point, size


@dataclass
class StepOutcome:
    count: int
    last_step: int | None
    changed: bool
    tail_document: dict[str, Any] | None  # None: as stored


def _document(tail: Tail, last_step: int | None, hides: dict[int, int | None]) -> dict[str, Any]:
    return {"tail": tail.to_dict(), "meta": {"last_step": last_step, "hides": {str(k): v for k, v in hides.items()}}}


def _boundaries(run: RunSlice, items: list[Item], stored: StoredRun | None, lookup: Lookup, starts: list[int],
                hides: dict[int, int | None], last_step: int | None) -> int | None:
    """Update `hides` for the attempts the batch shows; return the lowest stored step that must be
    re-examined because a later attempt now hides it (None: nothing stored is newly hidden)."""
    cut: int | None = None
    for start in starts[1:]:
        later = [i.event.step for i in items if i.event.seq > start]
        low = min(later) if later else None
        if start not in hides:
            stored_low = lookup.min_step_after_seq(run.run_id, start) if stored is not None else None
            low = min((v for v in (low, stored_low) if v is not None), default=None)
        elif low is None or (hides[start] is not None and low >= hides[start]):
            continue
        hides[start] = low
        if low is not None and last_step is not None and low <= last_step:
            cut = low if cut is None else min(cut, low)
    return cut


def _hidden(seq: int, step: int, hides: dict[int, int | None]) -> bool:
    return any(seq < start and low is not None and step >= low for start, low in hides.items())


def _fast(items: list[Item], last_step: int | None) -> bool:
    previous = last_step
    for item in items:
        if previous is not None and item.event.step <= previous:
            return False
        previous = item.event.step
    return True


def _rollup_rows(run_id: str, done: list[tuple[int, int, dict]]) -> list[tuple]:
    return [(run_id, level, index, json_text(agg)) for level, index, agg in done]


def plan_steps(run: RunSlice, stored: StoredRun | None, lookup: Lookup, starts: list[int],
               writes: Writes) -> StepOutcome:
    damaged = stored is not None and stored.damaged
    if not run.steps and len(starts) < 2 and not damaged:  # the common case for a run that logs no steps
        summary = stored.summary if stored is not None else {}
        return StepOutcome(summary.get("steps", 0), summary.get("last_step"), False,
                           None if stored is not None else _document(Tail(), None, {}))
    tail = stored.tail if stored is not None else Tail()
    meta = stored.tail_meta if stored is not None else {}
    hides = {int(k): v for k, v in meta.get("hides", {}).items()}
    last_step = meta.get("last_step")
    items = sorted(run.steps, key=lambda i: i.event.seq)
    cut = _boundaries(run, items, stored, lookup, starts, hides, last_step)
    if damaged:
        cut = -1  # the tail could not be read: rewrite the whole series (ordinals and rollups) from its rows
    items = [i for i in items if not _hidden(i.event.seq, i.event.step, hides)]
    if not items and cut is None:
        return StepOutcome(tail.count, last_step, False, _document(tail, last_step, hides))
    if cut is None and _fast(items, last_step):
        writes.extend("steps_insert", [
            (run.run_id, i.event.step, tail.count + n, i.event.seq, i.event.event_id, to_us(i.event.ts), i.event.epoch,
             metrics_json(i.event.metrics)) for n, i in enumerate(items)])
        done = append(tail, [(i.event.step, i.event.metrics) for i in items])
        writes.extend("rollups_upsert", _rollup_rows(run.run_id, done))
        last_step = items[-1].event.step
        return StepOutcome(tail.count, last_step, True, _document(tail, last_step, hides))
    return _rewrite_suffix(run, stored, lookup, items, cut, tail, hides, writes)


def _rewrite_suffix(run: RunSlice, stored: StoredRun | None, lookup: Lookup, items: list[Item], cut: int | None,
                    tail: Tail, hides: dict[int, int | None], writes: Writes) -> StepOutcome:
    first = min([i.event.step for i in items] + ([cut] if cut is not None else []))
    suffix = lookup.steps_from(run.run_id, first) if stored is not None else []
    start = tail.count - len(suffix)  # ordinal of the first row at or after `first`
    merged = {row.step: row for row in suffix}
    for item in items:
        event = item.event
        mine = merged.get(event.step)
        if mine is None or (event.seq, event.event_id) > (mine.seq, mine.event_id):
            merged[event.step] = StoredStep(event.step, -1, event.seq, event.event_id, to_us(event.ts), event.epoch,
                                            metrics_json(event.metrics))
    rows = [merged[s] for s in sorted(merged) if not _hidden(merged[s].seq, s, hides)]
    if [(r.step, r.event_id) for r in rows] == [(r.step, r.event_id) for r in suffix]:
        last_step = stored.tail_meta.get("last_step") if stored is not None else None
        return StepOutcome(tail.count, last_step, False, _document(tail, last_step, hides))
    writes.add("steps_delete_from", run.run_id, first)
    writes.extend("steps_insert", [(run.run_id, r.step, start + n, r.seq, r.event_id, r.ts_us, r.epoch, r.metrics)
                                   for n, r in enumerate(rows)])
    rebuilt = _tail_at(run.run_id, lookup, first, start)
    for level in LEVELS:
        writes.add("rollups_delete_from", run.run_id, level, start // size(level))
    done = append(rebuilt, [(r.step, metrics_from_json(r.metrics)) for r in rows])
    writes.extend("rollups_upsert", _rollup_rows(run.run_id, done))
    last_step = rows[-1].step if rows else lookup.max_step_before(run.run_id, first)
    return StepOutcome(rebuilt.count, last_step, True, _document(rebuilt, last_step, hides))


def _tail_at(run_id: str, lookup: Lookup, first_step: int, count: int) -> Tail:
    """The rollup tail as it was after the first `count` rows (all before `first_step`), from stored
    complete buckets and at most 15 stored rows."""
    tail = Tail(count=count)
    for level in LEVELS:
        lo = count - count % size(level)
        if level == MIN_LEVEL:
            rows = lookup.steps_before(run_id, first_step, count - lo)
            tail.open[level] = merge_all(point(step, metrics_from_json(m)) for step, m in rows)
        else:
            child = size(level - 1)
            hi = count - count % child
            tail.open[level] = merge_all(lookup.rollups(run_id, level - 1, lo // child, hi // child))
    tail.open = {k: v for k, v in tail.open.items() if v}
    return tail
