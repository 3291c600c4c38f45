"""The DuckDB catalog: views exist before any data, and other processes read it while workers ingest."""

from __future__ import annotations

import json
import subprocess
import sys

from epochstream.layout import DataLayout
from tests.conftest import ROOT, settings_env
from tests.draining import drain_all
from tests.workers.helpers import publish_runs
from workers.catalog import ensure_catalog, open_catalog, view_sql

READER = """
import json, sys, time
from epochstream.settings import Settings
from workers.catalog import open_catalog
target, counts, deadline = int(sys.argv[1]), [], time.monotonic() + 60
while time.monotonic() < deadline:
    con = open_catalog(Settings(), read_only=True)
    counts.append(con.execute("SELECT count(*) FROM epochs").fetchone()[0])
    con.close()
    if len(counts) == 1:
        print("ready", flush=True)
    if counts[-1] >= target:
        break
    time.sleep(0.02)
print(json.dumps(counts))
"""


def test_fresh_catalog_has_every_view_and_is_empty(settings):
    ensure_catalog(settings)
    con = open_catalog(settings)
    try:
        for view in ("runs", "trends", "epochs", "epoch_metrics", "system", "system_1m", "dead_letters"):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
        columns = [row[0] for row in con.execute("DESCRIBE epochs").fetchall()]
        assert {"train/loss", "val/loss", "val/perplexity", "gradient_norm", "epoch_duration"} <= set(columns)
    finally:
        con.close()


def test_view_sql_uses_union_by_name_and_dedupes():
    sql = view_sql(DataLayout(ROOT / "nowhere"))
    assert "union_by_name = true" in sql["epoch_events"]
    assert "PARTITION BY run_id, event_id" in sql["system"]
    assert "PARTITION BY stream, stream_id" in sql["dead_letters"]


def test_second_process_reads_read_only_during_ingest(settings, redis_client):
    ensure_catalog(settings)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(6 * 40)], env=settings_env(settings), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready"  # it has the catalog open before ingest starts
    held = open_catalog(settings)  # this process holds it open read-only the whole time, too
    try:
        for round_ in range(6):
            publish_runs(settings, runs=1, epochs=40, prefix=f"round{round_}-")
            drain_all(redis_client, settings)
            assert held.execute("SELECT count(*) FROM epochs").fetchone()[0] == 40 * (round_ + 1)
        out, err = reader.communicate(timeout=90)
    finally:
        held.close()
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err[-2000:]
    counts = json.loads(out)
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] == 240


def test_documented_queries_run(settings, redis_client):
    import re

    from producer import Publisher, start_run
    from schemas.system import GpuSample

    publisher = Publisher(settings)
    for lr in (0.1, 0.01):
        with start_run(project="resnet-sweep", config={"lr": lr}, publisher=publisher) as run:
            for epoch in range(4):
                run.log_epoch(epoch, {"train/loss": 1 / (epoch + 1), "val/loss": lr + 1 / (epoch + 1),
                                      "val/accuracy": 0.5, "learning_rate": lr})
                run.log_system(gpus=[GpuSample(index=0, mem_allocated_mb=100.0 * epoch, utilization_pct=90.0)])
    try:
        with start_run(project="resnet-sweep", config={"lr": 1.0}, publisher=publisher):
            raise RuntimeError("CUDA out of memory " + "x" * 500)
    except RuntimeError:
        pass
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings)
    text = (ROOT / "README.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", text, re.S)
    assert len(queries) == 5
    con = open_catalog(settings, fresh=True)  # what `epochstream sql` does: a snapshot of the read model now
    try:
        # Arrow, not fetchall(): DuckDB's Python rows need pytz for TIMESTAMPTZ columns.
        results = [[tuple(r.values()) for r in con.sql(q).to_arrow_table().to_pylist()] for q in queries]
    finally:
        con.close()
    assert len(results[1]) == 2 and {round(r[2], 6) for r in results[2]} == {0.26, 0.35}
    assert len(results[3]) == 1 and results[3][0][4].endswith("x" * 500)  # the whole error
    assert len(results[4]) == 2 and results[4][0][1] == 300.0  # the failed run sent no system samples
