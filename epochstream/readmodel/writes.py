"""What one batch will write, collected while planning (outside the write lock) and executed in one
transaction. Each list holds the parameter tuples of one statement, run with `executemany`. The statements
are the SQL both SQLite and PostgreSQL run (`ON CONFLICT ...`, not SQLite's `INSERT OR IGNORE/REPLACE`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATEMENTS = {
    "events": "INSERT INTO events (run_id, seq, digest) VALUES (?, ?, ?)",
    "run_events": "INSERT INTO run_events (run_id, event_id, seq, type, ts_us, body, config) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "epochs_delete": "DELETE FROM epochs WHERE run_id = ? AND epoch = ?",
    "epochs_upsert": "INSERT INTO epochs (run_id, epoch, seq, event_id, ts_us, samples, metrics) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, epoch) DO UPDATE SET seq = excluded.seq, "
                     "event_id = excluded.event_id, ts_us = excluded.ts_us, samples = excluded.samples, "
                     "metrics = excluded.metrics",
    "steps_delete_from": "DELETE FROM steps WHERE run_id = ? AND step >= ?",
    "steps_insert": "INSERT INTO steps (run_id, step, ord, seq, event_id, ts_us, epoch, metrics) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "rollups_delete_from": "DELETE FROM step_rollups WHERE run_id = ? AND level = ? AND bucket >= ?",
    "rollups_upsert": "INSERT INTO step_rollups (run_id, level, bucket, data) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (run_id, level, bucket) DO UPDATE SET data = excluded.data",
    "system_insert": "INSERT INTO system (run_id, event_id, seq, ts_us, data) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT DO NOTHING",
    "runs_upsert": None,  # built below from RUN_COLUMNS
    "tags_clear": "DELETE FROM run_tags WHERE run_id = ?",
    "tags_insert": "INSERT INTO run_tags (tag, run_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
    "problems": "INSERT INTO problems (run_id, at_us, reason) VALUES (?, ?, ?)",
}
RUN_COLUMNS = ("run_id", "partition", "project", "name", "status", "sort_us", "last_seen_us", "stale_after_us",
               "best_asc", "best_desc", "epochs", "dropped", "version", "epochs_version", "steps_version",
               "system_version", "summary", "config", "trend_state", "step_tail")
_UPDATES = {"config": "coalesce(excluded.config, runs.config)"}  # None: the batch did not change the config
STATEMENTS["runs_upsert"] = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
    f"ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = {_UPDATES.get(c, 'excluded.' + c)}" for c in RUN_COLUMNS[1:]))
# Deletes before inserts of the same table: a rewritten suffix must not collide with its old rows.
ORDER = ("events", "run_events", "epochs_delete", "epochs_upsert", "steps_delete_from", "steps_insert",
         "rollups_delete_from", "rollups_upsert", "system_insert", "runs_upsert", "tags_clear", "tags_insert",
         "problems")


@dataclass
class Writes:
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {name: [] for name in ORDER})

    def add(self, statement: str, *params: object) -> None:
        self.rows[statement].append(params)

    def extend(self, statement: str, params: list[tuple]) -> None:
        self.rows[statement].extend(params)

    def merge(self, other: Writes) -> None:
        for name, params in other.rows.items():
            if params:
                self.rows[name].extend(params)

    def execute(self, con: Any) -> None:  # sqlite3's connection or postgres.PgConnection
        for name in ORDER:
            if self.rows[name]:
                con.executemany(STATEMENTS[name], self.rows[name])
