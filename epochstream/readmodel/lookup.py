"""The reads a batch's planning needs, on the writer's connection (outside the write transaction: only
this partition's drain writes these runs, and the fence check at commit refuses a stale one)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from epochstream.readmodel.batch import STORED_COLUMNS, StoredRun
from epochstream.readmodel.values import config_from_json, from_us
from schemas.lifecycle import LifecycleEvent
from schemas.rollups import Aggregate

CHUNK = 400  # bound parameters per IN (...) list: well under SQLite's limit


class StoredEpoch(NamedTuple):
    seq: int
    event_id: str
    ts_us: int
    samples: int | None
    metrics: str  # JSON text


class StoredStep(NamedTuple):
    step: int
    ord: int
    seq: int
    event_id: str
    ts_us: int
    epoch: int | None
    metrics: str


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Lookup:
    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def runs(self, run_ids: Sequence[str]) -> dict[str, StoredRun | Exception]:
        """Each run's stored row, parsed; an unparseable row comes back as the exception (refolded)."""
        out: dict[str, StoredRun | Exception] = {}
        for part in chunks(list(run_ids)):
            marks = ",".join("?" * len(part))
            for row in self.con.execute(f"SELECT {STORED_COLUMNS} FROM runs WHERE run_id IN ({marks})", part):
                try:
                    out[row[0]] = StoredRun.parse(row)
                except Exception as exc:  # noqa: BLE001 - a damaged row must not stop the other runs
                    out[row[0]] = exc
        return out

    def digests(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """(run, seq) -> the digest of the event applied under that identity, for those that exist."""
        # Per run, `seq IN (...)`: index seeks on the primary key. A row-value IN over a VALUES list scanned the
        # whole table instead (~0.5 s for a redelivered batch of 5,000 over 100,000 stored events).
        found: dict[tuple[str, int], bytes] = {}
        by_run: dict[str, list[int]] = {}
        for run_id, seq in keys:
            by_run.setdefault(run_id, []).append(seq)
        for run_id, seqs in by_run.items():
            for part in chunks(seqs):
                marks = ",".join("?" * len(part))
                for seq, stored in self.con.execute(
                        f"SELECT seq, digest FROM events WHERE run_id = ? AND seq IN ({marks})", [run_id, *part]):
                    found[(run_id, seq)] = stored
        return found

    def newest_seqs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """run -> the highest seq applied to it, for runs that have any (one index seek per run, in one
        statement per chunk: over a network, a round trip per run was most of a PostgreSQL drain's cost)."""
        found: dict[str, int] = {}
        for part in chunks(list(run_ids)):
            values = ", ".join("(?)" for _ in part)
            for run_id, seq in self.con.execute(
                    f"SELECT column1, (SELECT max(seq) FROM events WHERE run_id = column1) FROM (VALUES {values}) "
                    "AS wanted", part):
                if seq is not None:
                    found[run_id] = seq
        return found

    def lifecycle(self, run_id: str) -> list[LifecycleEvent]:
        rows = self.con.execute("SELECT type, seq, event_id, ts_us, body, config FROM run_events WHERE run_id = ?",
                                (run_id,))
        out = []
        for kind, seq, event_id, ts_us, body, config in rows:
            fields = orjson.loads(body)
            if config is not None:
                fields["config"] = config_from_json(config)
            out.append(LifecycleEvent(kind, seq, event_id, from_us(ts_us), fields))
        return out

    def epochs(self, run_id: str) -> dict[int, StoredEpoch]:
        rows = self.con.execute("SELECT epoch, seq, event_id, ts_us, samples, metrics FROM epochs WHERE run_id = ?",
                                (run_id,))
        return {row[0]: StoredEpoch(*row[1:]) for row in rows}

    def steps_from(self, run_id: str, step: int) -> list[StoredStep]:
        return [StoredStep(*row) for row in self.con.execute(
            "SELECT step, ord, seq, event_id, ts_us, epoch, metrics FROM steps WHERE run_id = ? AND step >= ? "
            "ORDER BY step", (run_id, step))]

    def steps_before(self, run_id: str, step: int, limit: int) -> list[tuple[int, str]]:
        """The last `limit` (step, metrics) rows before `step`, in step order."""
        if limit <= 0:
            return []
        rows = self.con.execute("SELECT step, metrics FROM steps WHERE run_id = ? AND step < ? ORDER BY step DESC "
                                "LIMIT ?", (run_id, step, limit)).fetchall()
        return rows[::-1]

    def max_step_before(self, run_id: str, step: int) -> int | None:
        row = self.con.execute("SELECT max(step) FROM steps WHERE run_id = ? AND step < ?", (run_id, step)).fetchone()
        return row[0]

    def min_step_after_seq(self, run_id: str, seq: int) -> int | None:
        """The lowest step logged with a seq above `seq` (a scan of the run's steps: only when an attempt
        boundary is first seen)."""
        return self.con.execute("SELECT min(step) FROM steps WHERE run_id = ? AND seq > ?", (run_id, seq)).fetchone()[0]

    def rollups(self, run_id: str, level: int, lo: int, hi: int) -> list[Aggregate]:
        """Stored complete buckets lo <= index < hi of a level, in order."""
        if hi <= lo:
            return []
        return [orjson.loads(data) for (data,) in self.con.execute(
            "SELECT data FROM step_rollups WHERE run_id = ? AND level = ? AND bucket >= ? AND bucket < ? "
            "ORDER BY bucket", (run_id, level, lo, hi))]
