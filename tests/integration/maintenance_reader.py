"""An analyst's process for the maintenance concurrency test: `python -m tests.integration.maintenance_reader
SETTINGS_JSON SECONDS STOP_FILE`. Asks QUERIES about the runs published before the test began (`a*`), over and over, in
its own DuckDB sessions (every third one the way `epochstream sql` opens it: quarantine check and snapshot
first), until STOP_FILE exists; prints {"answers": {query: [answer, ...]}, "errors": [...]} as JSON. Bounded
by SECONDS and MAX_ROUNDS."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from epochstream.settings import Settings
from workers.catalog import open_catalog

MAX_ROUNDS = 1000
QUERIES = {
    "epochs": "SELECT count(*), round(sum(\"train/loss\"), 9) FROM epochs WHERE run_id LIKE 'a%'",
    "finished": "SELECT count(*) FROM run_finished WHERE run_id LIKE 'a%'",
    "runs": "SELECT count(*), sum(epochs) FROM runs WHERE run_id LIKE 'a%'",
}


def main(settings: Settings, seconds: float, stop: Path) -> dict:
    answers: dict[str, list] = {name: [] for name in QUERIES}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline and rounds < MAX_ROUNDS and not stop.exists():
        rounds += 1
        try:
            con = open_catalog(settings, fresh=rounds % 3 == 0)
            try:
                for name, sql in QUERIES.items():
                    answers[name].append(list(con.execute(sql).fetchone()))
            finally:
                con.close()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            errors.append(repr(exc)[:400])
    return {"answers": answers, "errors": errors}


if __name__ == "__main__":
    print(json.dumps(main(Settings.model_validate_json(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))))
