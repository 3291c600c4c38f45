"""A run whose stored row cannot be read (a damaged summary or state): put it back together from the
run's own rows in the read model, so its next batch applies and no other run waits for a rebuild."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from epochstream.readmodel.batch import StoredRun
from epochstream.readmodel.errors import ReadModelError
from epochstream.readmodel.plan import new_summary
from schemas.rollups import Tail

# Summary fields no table row holds (the newest drop report rides on system and run_finished events, which
# the rows keep without it; a clock's lead is not in the clamped times): taken from the stored summary
# when that still parses (only the fold state or the step tail was damaged).
NOT_IN_ROWS = ("drops", "drops_seq", "dropped", "clock_ahead_s")


def _readable_summary(con: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    try:
        row = con.execute("SELECT summary FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        summary = orjson.loads(row[0]) if row else None
    except (sqlite3.DatabaseError, ReadModelError, orjson.JSONDecodeError, TypeError):
        return {}
    return summary if isinstance(summary, dict) else {}


def recovered(con: sqlite3.Connection, run_id: str) -> StoredRun:
    """A stand-in for the stored row: counts and times from the tables, no fold state (so the epochs are
    refolded, the lifecycle re-summarised and the step series rewritten from its rows)."""
    summary = new_summary(run_id)
    old = _readable_summary(con, run_id)
    summary.update({k: old[k] for k in NOT_IN_ROWS if k in old})
    one = con.execute
    summary["epochs"] = one("SELECT count(*) FROM epochs WHERE run_id = ?", (run_id,)).fetchone()[0]
    summary["system_samples"] = one("SELECT count(*) FROM system WHERE run_id = ?", (run_id,)).fetchone()[0]
    steps = one("SELECT count(*) FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
    seen, seq = 0, 0
    for table in ("epochs", "steps", "system", "run_events"):  # last_seq again from `events` below
        row = one(f"SELECT max(ts_us), max(seq) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()  # noqa: S608
        seen, seq = max(seen, row[0] or 0), max(seq, row[1] or 0)
    seq = max(seq, one("SELECT max(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0] or 0)
    summary["last_seen_us"], summary["last_seq"] = seen or None, seq
    try:
        versions = one("SELECT version, epochs_version, steps_version, system_version FROM runs WHERE run_id = ?",
                       (run_id,)).fetchone() or (0, 0, 0, 0)
    except (sqlite3.DatabaseError, ReadModelError):
        versions = (0, 0, 0, 0)
    run = StoredRun(run_id, summary, None, None, *versions, damaged=True)
    run.tail = Tail(count=steps)  # the ordinals stand; the step series is rewritten from its rows
    return run
