"""The read model's writer: one drained batch -> one transaction (rows, touched summaries, tracking record).

    writer = ReadModelWriter.open(data_dir, url=settings.read_model_url)  # "" = SQLite under data_dir
    writer.claim(partition, fence)                 # a drain that takes a partition over fences out the last one
    writer.conflicts(events)                       # before the log is written: who reuses a taken identity
    writer.apply(partition, entries, fence, now)   # entries: (stream id, event, ingested_at)

`apply` plans every touched run first, reading what it needs without holding the write lock (only this
partition's drain writes these runs), then opens the store's write transaction (SQLite: `BEGIN IMMEDIATE`;
PostgreSQL: the partition's advisory lock, see `postgres`), checks the fence token again, writes
everything and moves the partition's tracking record, and commits: a crash anywhere leaves either all
of the batch or none of it. The tracking record's position (the newest stream id committed) tells which
entries of a redelivered batch may already be in; those are checked row by row, so a crash between the
commit and XACK duplicates nothing, and neither does an entry a paused consumer left behind.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from epochstream.faults import crash_point
from epochstream.readmodel.batch import (
    DEFAULT_FUTURE_SKEW,
    Item,
    RunSlice,
    StoredRun,
    digest,
    newest_id,
    slice_by_run,
    stream_key,
)
from epochstream.readmodel.database import SCHEMA_VERSION
from epochstream.readmodel.errors import ReadModelError, StaleFence
from epochstream.readmodel.location import Location
from epochstream.readmodel.lookup import Lookup
from epochstream.readmodel.plan import plan_run
from epochstream.readmodel.recovery import recovered
from epochstream.readmodel.stores import Store, store_for
from epochstream.readmodel.values import to_us
from epochstream.readmodel.writes import Writes
from schemas.errors import IdentityConflict
from schemas.registry import Event

log = logging.getLogger("epochstream.readmodel")


class Tracking(NamedTuple):
    position: str
    fence: int
    batches: int


@dataclass
class ApplyResult:
    runs_changed: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (run_id, why) planning failed twice
    duplicates: int = 0  # events already applied (same identity, same content): nothing to do
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (stream id, why): another payload under an
    # identity already applied; left out of the read model (the first one stands), for the dead-letter stream


class ReadModelWriter:
    """`target`: the database of one generation in `store` (SQLite: its file, the default store being the
    file's directory; PostgreSQL: its schema)."""

    def __init__(self, target: Path | str, *, durable: bool = True, generation: str = "",
                 future_skew_s: float = DEFAULT_FUTURE_SKEW.total_seconds(), store: Store | None = None,
                 con: Any = None):
        self.store: Store = store if store is not None else Location(Path(target).parent)
        self.path = target
        self.generation = generation
        self.future_skew = timedelta(seconds=future_skew_s)  # Settings.future_skew_s: see batch.order_time
        self.con: Any = con if con is not None else self.store.connect_writer(target, durable=durable)

    @classmethod
    def open(cls, data_dir: Path, future_skew_s: float = DEFAULT_FUTURE_SKEW.total_seconds(),
             url: str | None = None) -> ReadModelWriter:
        """The writer of the read model in use (`url`: Settings.read_model_url; empty: SQLite under
        `data_dir`); the first generation is created here."""
        store = store_for(data_dir, url)
        generation, target, con = store.open_current()
        return cls(target, generation=generation, future_skew_s=future_skew_s, store=store, con=con)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, ReadModelError):
            self.con.close()

    def current_schema(self) -> bool:
        return self.store.schema_version(self.con) == SCHEMA_VERSION

    # -- the tracking record ---------------------------------------------------------------------------
    def tracking(self, partition: int) -> Tracking:
        row = self.con.execute("SELECT position, fence, batches FROM tracking WHERE partition = ?",
                               (partition,)).fetchone()
        return Tracking(*row) if row else Tracking("0-0", 0, 0)

    def tracking_record(self, partition: int) -> tuple[str, int | None]:
        """(position, when it was last written in microseconds, None if never)."""
        row = self.con.execute("SELECT position, updated_us FROM tracking WHERE partition = ?",
                               (partition,)).fetchone()
        return (row[0], row[1]) if row else ("0-0", None)

    def claim(self, partition: int, fence: int) -> None:
        """Record that the drain with `fence` holds the partition: from now on older drains' commits are
        refused. Raises StaleFence if a newer drain already claimed it. Not fsynced (every drain job pays
        it): a claim lost with the power only matters to a paused drain, which did not survive that either."""
        with self.store.transaction(self.con, partition, durable=False):
            current = self.tracking(partition)
            if current.fence > fence:
                raise StaleFence(partition, fence, current.fence)
            self._save_tracking(partition, current.position, fence, current.batches)

    def _save_tracking(self, partition: int, position: str, fence: int, batches: int) -> None:
        self.con.execute(
            "INSERT INTO tracking (partition, position, fence, batches, updated_us) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (partition) DO UPDATE SET position = excluded.position, fence = excluded.fence, "
            "batches = excluded.batches, updated_us = excluded.updated_us",
            (partition, position, fence, batches, time.time_ns() // 1000))

    # -- a batch ---------------------------------------------------------------------------------------
    def conflicts(self, events: Sequence[tuple[str, Event]]) -> dict[str, str]:
        """Stream id -> why, for the events of a batch (in stream order) that reuse an identity (run, seq)
        already taken, by an applied event or an earlier entry of the same batch, with different content.

        The drain asks before it writes the log, so a conflicting entry goes to the dead-letter stream and
        never into the log (where a reader could pick it over the first). The same event again (a
        redelivery, a replay) is no conflict. Cheap in the common case: only events at or below their run's
        newest applied seq, or repeated within the batch, have their digest computed and looked up."""
        by_identity: dict[tuple[str, int], list[tuple[str, Event]]] = {}
        for stream_id, event in events:
            by_identity.setdefault((event.run_id, event.seq), []).append((stream_id, event))
        newest = Lookup(self.con).newest_seqs(list({run_id for run_id, _ in by_identity}))
        doubtful = [key for key in by_identity if key[1] <= newest.get(key[0], -1)]
        stored = Lookup(self.con).digests(doubtful) if doubtful else {}
        out: dict[str, str] = {}
        for (run_id, seq), copies in by_identity.items():
            first = stored.get((run_id, seq))
            if first is None and len(copies) == 1:
                continue
            where = "applied" if first is not None else "taken in this batch"
            for stream_id, event in copies:
                mine = digest(event)
                if first is None:
                    first = mine
                elif mine != first:
                    out[stream_id] = str(IdentityConflict(event.type, event.event_id, run_id, seq, where))
        return out

    @staticmethod
    def _only_new(slices: dict[str, RunSlice], stored: dict, lookup: Lookup, writes: Writes,
                  result: ApplyResult) -> None:
        """Keep in each slice only the events not applied before, and record their identities.

        An event above the run's newest applied seq is new by construction (no lookup: the common case);
        one at or below it, or a seq repeated within the batch, is looked up by identity."""
        doubtful: list[tuple[str, int]] = []
        for run_id, run in slices.items():
            row = stored.get(run_id)
            last = row.summary.get("last_seq", 0) if isinstance(row, StoredRun) else (-1 if row is None else None)
            seen: set[int] = set()
            for item in run.items():
                seq = item.event.seq
                if last is None or seq <= last or seq in seen:
                    doubtful.append((run_id, seq))
                seen.add(seq)
        known = lookup.digests(doubtful) if doubtful else {}
        for run_id, run in slices.items():
            taken: dict[int, bytes] = {}

            def new(item: Item, run_id: str = run_id, taken: dict[int, bytes] = taken) -> bool:
                seq = item.event.seq
                before = taken.get(seq, known.get((run_id, seq)))
                if before is None:
                    taken[seq] = item.digest
                    writes.add("events", run_id, seq, item.digest)
                    return True
                if before == item.digest:
                    result.duplicates += 1
                else:
                    result.conflicts.append((item.stream_id, f"conflict: another {item.event.type} event was "
                                             f"already applied as {item.event.event_id!r} (run {run_id}, seq "
                                             f"{seq}) with different content; the first one stands"))
                return False

            run.keep(new)
    def apply(self, partition: int, entries: Sequence[tuple[str, Event, datetime]], fence: int,
              now: datetime) -> ApplyResult:
        result = ApplyResult()
        if not entries:
            return result
        before = self.tracking(partition)
        if before.fence > fence:
            raise StaleFence(partition, fence, before.fence)
        slices = slice_by_run(entries, self.future_skew)
        lookup = Lookup(self.con)
        stored = lookup.runs(list(slices))
        writes = Writes()
        self._only_new(slices, stored, lookup, writes, result)
        now_text = now.isoformat()
        for run_id, run in slices.items():
            row = stored.get(run_id)
            mine = Writes()
            try:
                if isinstance(row, Exception):
                    raise row
                changed = plan_run(run, row, lookup, partition, now_text, mine)
            except Exception as first:  # noqa: BLE001 - one damaged run must not hold up the others
                log.warning("run %s: stored state unreadable (%r); recovering it from its rows", run_id, first)
                mine = Writes()
                try:
                    changed = plan_run(run, recovered(self.con, run_id), lookup, partition, now_text, mine)
                except Exception as second:  # noqa: BLE001
                    why = f"could not apply its events ({second!r}); `epochstream rebuild` restores it from the log"
                    log.error("run %s: %s", run_id, why)
                    result.problems.append((run_id, why))
                    writes.add("problems", run_id, to_us(now), why)
                    continue
            writes.merge(mine)
            if changed:
                result.runs_changed.append(run_id)
        newest = newest_id(e[0] for e in entries)
        with self.store.transaction(self.con, partition):
            current = self.tracking(partition)
            if current.fence > fence:
                raise StaleFence(partition, fence, current.fence)
            writes.execute(self.con)
            crash_point("before_commit")
            position = max(current.position, newest, key=stream_key)
            self._save_tracking(partition, position, fence, current.batches + 1)
        return result
