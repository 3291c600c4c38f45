"""A read model's content without what legitimately differs between two of the same events (version
counters, ingestion times): `rebuild(log)` must equal the incremental read model by this measure."""

from __future__ import annotations

from typing import Any

import orjson

VOLATILE = {"version", "ingested_at"}


def canonical(con: Any) -> dict[str, Any]:  # sqlite3's connection or postgres.PgConnection: the same rows
    runs = {}
    for run_id, summary, config, state, tail in con.execute(
            "SELECT run_id, summary, config, trend_state, step_tail FROM runs ORDER BY run_id"):
        doc = {k: v for k, v in orjson.loads(summary).items() if k not in VOLATILE}
        runs[run_id] = {"summary": doc, "config": orjson.loads(config) if config else {},
                        "trend_state": orjson.loads(state) if state else None,
                        "step_tail": orjson.loads(tail) if tail else None}
    tables = {}
    for table, key in (("epochs", "run_id, epoch"), ("steps", "run_id, step"), ("system", "run_id, event_id"),
                       ("step_rollups", "run_id, level, bucket"), ("run_events", "run_id, event_id"),
                       ("run_tags", "run_id, tag"), ("events", "run_id, seq")):
        tables[table] = con.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()  # noqa: S608
    return {"runs": runs, **tables}
