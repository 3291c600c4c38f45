"""A preempted job resumed from its checkpoint keeps one history and both attempts (real processes, a real
Redis, the workers' drain, a real uvicorn API)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import httpx
import pyarrow.dataset as ds
import pytest

from tests.conftest import ROOT, settings_env
from tests.draining import drain_all

pytestmark = pytest.mark.slow


def trainer(settings, run_id: str, checkpoint, *die_at: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.trainer", run_id, str(checkpoint), *die_at],
                            cwd=ROOT, env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def logged_events(settings, run_id: str) -> list[dict]:
    rows = []
    for kind in ("run_started", "epoch", "run_finished"):
        table = ds.dataset(settings.data_dir / "log" / kind, format="parquet").to_table(
            columns=["event_id", "run_id", "seq", *(["epoch"] if kind == "epoch" else [])])
        rows += [dict(r, type=kind) for r in table.to_pylist() if r["run_id"] == run_id]
    return sorted(rows, key=lambda r: r["seq"])


def test_a_run_killed_at_epoch_30_resumes_from_its_epoch_25_checkpoint(settings, redis_client, api_server,
                                                                       tmp_path):
    run_id = f"preempted-{uuid.uuid4().hex[:8]}"
    checkpoint = tmp_path / "checkpoint.json"
    first = trainer(settings, run_id, checkpoint, "30")
    assert first.stdout.readline().strip() == "at 30", first.stderr.read()
    first.send_signal(signal.SIGKILL)  # preempted: no run_finished, no goodbye
    first.wait(timeout=10)
    assert checkpoint.read_text() == '{"epoch": 25, "attempt": 1}'

    second = trainer(settings, run_id, checkpoint)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.split() == ["run", run_id]  # the same run, not a fresh id
    drain_all(redis_client, settings, via_rq=True)

    api = api_server.base_url
    history = httpx.get(f"{api}/runs/{run_id}/epochs").json()["epochs"]
    assert [e["epoch"] for e in history] == list(range(50))  # each epoch once
    attempt_of = {e["epoch"]: e["metrics"]["attempt"] for e in history}
    assert all(attempt_of[e] == 1.0 for e in range(26)) and all(attempt_of[e] == 2.0 for e in range(26, 50))

    summary = httpx.get(f"{api}/runs/{run_id}").json()
    assert summary["status"] == "completed" and summary["epochs"] == 50
    assert [a["resume"] for a in summary["attempts"]] == [False, True]
    assert summary["attempts"][0]["status"] is None  # killed: it never said how it ended

    log = logged_events(settings, run_id)  # the log keeps both attempts, nothing deduplicated away
    assert len({r["event_id"] for r in log}) == len(log) == 1 + 31 + 1 + 24 + 1
    assert [r["epoch"] for r in log if r["type"] == "epoch"] == list(range(31)) + list(range(26, 50))
    resumed_at = [r["seq"] for r in log if r["type"] == "run_started"][1]
    assert all(r["seq"] < resumed_at for r in log[:32]) and all(r["seq"] > resumed_at for r in log[33:])


def test_the_readmes_resume_example_continues_an_existing_run(settings, redis_client):
    from producer import Publisher, start_run
    from tests.people.test_docs import example
    from tests.producer.conftest import run_events

    publisher = Publisher(settings)
    with start_run(project="preemptible", run_id="job-1234", publisher=publisher) as first:
        for epoch in range(31):
            first.log_epoch(epoch, {"train/loss": 1.0})
    assert publisher.flush(10)
    publisher.close()
    done = subprocess.run([sys.executable, "-c", example("resume")], cwd=ROOT, env=settings_env(settings),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = run_events(redis_client, settings, "job-1234")
    assert [e.resume for e in events if e.type == "run_started"] == [False, True]
    assert [e.epoch for e in events if e.type == "epoch"] == list(range(31)) + list(range(26, 50))
    assert len({e.event_id for e in events}) == len(events) == 1 + 31 + 1 + 1 + 24 + 1
