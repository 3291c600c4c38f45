"""`runs`, `watch`, `analyze`, `sql` as real subprocesses against real Redis, Parquet, DuckDB and uvicorn."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producer import Publisher, start_run
from tests.conftest import free_port
from tests.draining import drain_all
from tests.people.conftest import one_clear_line

TRAIN = [2.0, 1.0, 0.6, 0.5, 0.4, 0.3, 0.25]
VAL = [1.0, 0.7, 0.45, 0.5, 0.62, 0.8, 0.9]


@pytest.fixture
def published(settings, redis_client):
    """Two runs in the log: one that overfits after epoch 2, one that fails with a real traceback."""
    publisher = Publisher(settings)
    with start_run(project="cli", name="overfits", config={"lr": 0.1}, publisher=publisher) as good:
        for epoch, (t, v) in enumerate(zip(TRAIN, VAL, strict=True)):
            good.log_epoch(epoch, {"train/loss": t, "val/loss": v}, samples=10)
    try:
        with start_run(project="cli", name="breaks", publisher=publisher) as bad:
            bad.log_epoch(0, {"train/loss": 1.0, "val/loss": 1.0}, samples=10)
            raise ValueError("the data loader ran dry")
    except ValueError:
        pass
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings, via_rq=True)
    return {"good": good.run_id, "bad": bad.run_id}


def test_runs_lists_every_run_with_flags(cli, published, api_server):
    result = cli("runs", "--api", api_server.base_url)
    assert result.returncode == 0, result.stderr
    assert published["good"][:12] in result.stdout and published["bad"][:12] in result.stdout
    good_line = next(line for line in result.stdout.splitlines() if published["good"][:12] in line)
    assert "completed" in good_line and "overfitting" in good_line and "0.45" in good_line
    bad_line = next(line for line in result.stdout.splitlines() if published["bad"][:12] in line)
    assert "failed" in bad_line


def test_runs_finds_the_api_from_the_settings(cli, published, api_server):
    result = cli("runs", env={"EPOCHSTREAM_API_PORT": str(api_server.port)})
    assert result.returncode == 0, result.stderr
    assert published["good"][:12] in result.stdout


def test_analyze_gives_verdict_evidence_and_recommendation(cli, published, api_server):
    result = cli("analyze", published["good"][:10], "--api", api_server.base_url)  # a prefix will do
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "monitoring val/loss (min), patience 5, min_delta 0.0001" in out
    assert "verdict: overfitting since epoch 2" in out
    assert "best val/loss 0.45 at epoch 2; final 0.9 at epoch 6 (+0.45, 4 epochs later)" in out
    assert "recommendation: use_checkpoint (epoch 2) — use epoch 2's checkpoint" in out


def test_analyze_a_failed_run_points_at_its_traceback(cli, published, api_server):
    result = cli("analyze", "breaks", "--api", api_server.base_url)  # so will a run name
    assert result.returncode == 0, result.stderr
    assert "the run failed after epoch 0: ValueError: the data loader ran dry" in result.stdout
    assert f"GET /runs/{published['bad']}" in result.stdout


def test_watch_once_draws_one_frame(cli, published, api_server):
    result = cli("watch", published["good"], "--once", "--api", api_server.base_url)
    assert result.returncode == 0, result.stderr
    assert "train/loss" in result.stdout and "val/loss" in result.stdout
    assert "█" in result.stdout and "▁" in result.stdout  # sparklines drawn
    assert "overfitting" in result.stdout and "no GPU samples" in result.stdout


def test_watch_ends_by_itself_when_the_run_has_ended(cli, published, api_server):
    result = cli("watch", published["bad"], "--interval", "0.2", "--api", api_server.base_url, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "the data loader ran dry" in result.stdout


def test_sql_reads_the_catalog(cli, published, settings):
    result = cli("sql", "SELECT name, status, best_epoch FROM runs ORDER BY name")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "overfits" in line or "breaks" in line]
    assert len(rows) == 2
    assert "failed" in rows[0] and "completed" in rows[1] and "2" in rows[1]
    assert "2 rows" in result.stdout


def test_sql_shows_timestamp_columns(cli, published):
    # TIMESTAMPTZ values reach Python only through pytz: without it every query of started_at failed.
    result = cli("sql", "SELECT name, started_at, year(started_at) AS y FROM runs ORDER BY name")
    assert result.returncode == 0, result.stderr
    assert "2 rows" in result.stdout and str(datetime.now(UTC).year) in result.stdout


def test_sql_cannot_write(cli, published):
    line = one_clear_line(cli("sql", "CREATE TABLE t AS SELECT 1"))
    assert "SQL error" in line and "read-only" in line


def test_user_errors_are_one_clear_line(cli, published, api_server, tmp_path):
    assert "no run 'no-such-run'" in one_clear_line(cli("analyze", "no-such-run", "--api", api_server.base_url))
    assert "no run" in one_clear_line(cli("watch", "zzz", "--once", "--api", api_server.base_url))
    assert "SQL error" in one_clear_line(cli("sql", "SELEC nothing"))
    assert "Catalog Error" in one_clear_line(cli("sql", "SELECT * FROM no_such_view"))
    stopped = f"http://127.0.0.1:{free_port()}"
    for args in (("runs",), ("analyze", "x"), ("watch", "x", "--once")):
        assert "epochstream up" in one_clear_line(cli(*args, "--api", stopped))
    empty = tmp_path / "empty"
    assert "no epochstream data" in one_clear_line(cli("sql", "SELECT 1", "--data-dir", str(empty)))


def test_up_says_when_redis_is_unreachable(cli, tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = cli("up", "--port", "0", "--data-dir", str(tmp_path / "d"), env={"EPOCHSTREAM_REDIS_URL": dead})
    line = one_clear_line(result)
    assert dead in line and "does not answer" in line
    assert result.stdout == ""  # nothing started, so nothing to report as stopped or drained


def test_broker_and_setting_errors_are_one_clear_line(cli, tmp_path):
    alone = {"EPOCHSTREAM_REDIS_URL": "", "EPOCHSTREAM_DATA_DIR": str(tmp_path / "none")}  # no broker anywhere
    for args in (("worker", "--burst"), ("scheduler",), ("dlq", "list")):
        assert "no broker" in one_clear_line(cli(*args, env=alone)), args
    dead = f"redis://127.0.0.1:{free_port()}/0"
    assert "cannot reach Redis" in one_clear_line(cli("dlq", "list", env={"EPOCHSTREAM_REDIS_URL": dead}))
    assert "bad Redis URL" in one_clear_line(cli("worker", "--burst", env={"EPOCHSTREAM_REDIS_URL": "nonsense"}))
    line = one_clear_line(cli("runs", env={"EPOCHSTREAM_PARTITIONS": "many"}))
    assert "EPOCHSTREAM_PARTITIONS" in line and "'many'" in line


def test_api_errors_are_readable(cli, published, api_server):
    line = one_clear_line(cli("runs", "--status", "bogus", "--api", api_server.base_url))
    assert "status: Input should be" in line and "[{" not in line  # not a dump of the 422 body
    # Not a run id: looked up by name only, never put into a URL path, and shown as typed (no markup).
    assert "no run '[bold]/../x?'" in one_clear_line(cli("analyze", "[bold]/../x?", "--api", api_server.base_url))


def test_runs_reads_past_the_largest_page(published, api_server, monkeypatch):
    import epochstream.client as typed
    from epochstream.cli import api_client as client

    monkeypatch.setattr(typed, "MAX_PAGE", 1)  # so two runs need two pages
    api = client.ApiClient(api_server.base_url)
    try:
        assert {r["run_id"] for r in api.runs(limit=5)} == set(published.values())
        assert len(api.runs(limit=1)) == 1
    finally:
        api.close()
