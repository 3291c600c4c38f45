"""A process for the SQL concurrency test: `python -m tests.integration.sql_process ROLE SETTINGS_JSON SECONDS`.

- `count`:    an analyst's own DuckDB sessions (`open_catalog(fresh=False)`), each asking `SELECT count(*)
              FROM runs` QUERIES_PER_SESSION times; prints {"answers": [...], "errors": [...]} as JSON;
- `snapshot`: takes new snapshots of the read model one after the other (what the scheduler does every
              few seconds, here as fast as it can); prints {"taken": n}.
Both stop after SECONDS or a bounded number of rounds.
"""

from __future__ import annotations

import json
import sys
import time

from epochstream.layout import DataLayout
from epochstream.readmodel.reader import ReadModelReader
from epochstream.settings import Settings
from workers.catalog import open_catalog
from workers.snapshots import take

MAX_ROUNDS = 2000
QUERIES_PER_SESSION = 20


def count(settings: Settings, seconds: float) -> dict:
    answers, errors = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(answers) + len(errors) < MAX_ROUNDS:
        try:
            con = open_catalog(settings, fresh=False)
            try:
                for _ in range(QUERIES_PER_SESSION):
                    answers.append(con.execute("SELECT count(*) FROM runs").fetchone()[0])
            finally:
                con.close()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            errors.append(repr(exc)[:300])
    return {"answers": answers, "errors": errors}


def snapshot(settings: Settings, seconds: float) -> dict:
    layout, reader = DataLayout(settings.data_dir), ReadModelReader(settings.data_dir)
    taken = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and taken < MAX_ROUNDS:
        take(layout, reader)
        taken += 1
    reader.close()
    return {"taken": taken}


if __name__ == "__main__":
    role, settings_json, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    settings = Settings.model_validate_json(settings_json)
    print(json.dumps({"count": count, "snapshot": snapshot}[role](settings, seconds)))
