"""`epochstream migrate`: a local deployment (log in the data directory, read model in SQLite) moved to S3
(moto's server on loopback) and PostgreSQL: every view answers exactly as before, the read model holds the
same rows, a rerun copies nothing, and new events drain on into the new places."""

from __future__ import annotations

import subprocess
import sys

from epochstream.layout import DataLayout
from epochstream.settings import settings_env
from tests.conftest import ROOT
from tests.draining import drain_all
from tests.integration.helpers import xadd_raw
from tests.integration.test_s3_sql import publish_sweep
from tests.readmodel import content
from tests.workers.helpers import publish_runs
from tests.workers.test_maintenance import _readme_queries
from tests.workers.test_rebuild_compact import VIEWS
from workers.catalog import open_catalog
from workers.compaction import compact
from workers.log_reader import count_by_identity, segments
from workers.log_store import log_store

CLI = "from epochstream.cli import main; main()"
RUNS, EPOCHS = 1000, 3


def answers(settings) -> dict[str, list]:
    """Every view's rows and the README's five queries' (one catalog connection: over the bucket, each query
    lists and opens its objects anew); of the snapshot views, what does not depend on which copy of an event
    was applied last (`version`, `ingested_at` differ between a rebuild and the incremental read model)."""
    con = open_catalog(settings, fresh=True)
    try:
        out = {}
        for name, sql in [*VIEWS.items(), *((f"readme {i}", q) for i, q in enumerate(_readme_queries()))]:
            rows = con.sql(sql).to_arrow_table().to_pylist()
            if name in ("runs", "trends"):
                rows = [{k: v for k, v in row.items() if k not in ("version", "ingested_at")} for row in rows]
            out[name] = rows if name in VIEWS else sorted(rows, key=repr)
        return out
    finally:
        con.close()


def _migrate(settings, log_url: str, read_model_url: str) -> str:
    proc = subprocess.run([sys.executable, "-c", CLI, "migrate", "--log-url", log_url, "--read-model-url",
                           read_model_url], env=settings_env(settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_migrate_a_local_deployment_to_s3_and_postgresql(settings, s3_server, postgres_url, redis_client,
                                                        monkeypatch):
    local = settings.model_copy(update={"partitions": 2, "drain_batch": 200})
    publish_runs(local, runs=RUNS, epochs=EPOCHS, system_every=2)
    publish_sweep(local)  # something for each README query: a sweep by learning rate, a failed run, GPU samples
    xadd_raw(redis_client, local, "r0", b"not an event")  # a dead letter: it moves too
    assert drain_all(redis_client, local).dead_lettered == 1
    compact(local, ["epoch"], keep_s=3600)  # superseded parts stay on disk: they are not copied, their rows are
    publish_runs(local, runs=5, epochs=EPOCHS, prefix="late")  # and segments written after the compaction
    drain_all(redis_client, local)
    before, rows = answers(local), content(local)
    assert len(before["runs"]) == RUNS + 8 and len(before["dead_letters"]) == 1
    assert all(before[f"readme {i}"] for i in range(5))
    local_layout = DataLayout.of(local)
    events = {t: count_by_identity(local_layout, t) for t in ("epoch", "system", "run_started", "run_finished")}

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    log_url = f"s3://{s3_server.fresh_bucket()}/deployment"
    out = _migrate(local, log_url, postgres_url)
    files = sum(len(segments(local_layout, t)) + 1 for t in ("epoch", "system", "run_started", "run_finished",
                                                             "dead_letters", "step", "run_config"))
    assert f"copied {files} file(s) to {log_url} (0 already there)" in out, out
    assert f"rebuilt the read model of {RUNS + 8} run(s)" in out, out

    moved = local.model_copy(update={"log_url": log_url, "read_model_url": postgres_url})
    layout = DataLayout.of(moved)
    assert {t: count_by_identity(layout, t) for t in events} == events  # every event, once, in the bucket
    assert answers(moved) == before  # every view and query, over the bucket and the PostgreSQL snapshot
    assert content(moved) == rows  # the rebuilt read model holds what the incremental one did

    again = _migrate(local, log_url, postgres_url)  # idempotent: nothing is copied twice
    assert f"copied 0 file(s) to {log_url} ({files} already there)" in again, again
    assert content(moved) == rows

    publish_runs(moved, runs=2, epochs=EPOCHS, prefix="after")  # the deployment goes on in its new places
    drain_all(redis_client, moved)
    assert len(content(moved)["runs"]) == RUNS + 10
    assert {p.name for p in segments(local_layout, "epoch")} < {p.name for p in log_store(layout).live("epoch")}
