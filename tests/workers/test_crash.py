"""A worker process SIGKILLed mid-batch (for real, at named points): afterwards every event is present once."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from rq import Worker
from rq.registry import FailedJobRegistry

from epochstream.layout import DataLayout
from schemas.keys import Keys
from tests.conftest import READ_MODELS, ROOT, settings_env, with_read_model
from tests.workers.helpers import publish_runs
from workers.catalog import query
from workers.drain import CRASH_ENV
from workers.log_reader import count_by_id, segments
from workers.scheduling import drain_queue, schedule_once

CLI = "from epochstream.cli import main; main()"


@pytest.fixture(params=READ_MODELS)
def settings(request, settings):
    return with_read_model(request, settings)  # the read model in SQLite, and in PostgreSQL


def run_worker(settings, crash_at=None):
    env = settings_env(settings)
    env["EPOCHSTREAM_CLAIM_IDLE_MS"] = "0"
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, "-c", CLI, "worker", "--burst", "--no-scheduler"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("point", ["before_write", "after_write", "before_ack"])
def test_sigkill_mid_batch_then_recovery_stores_each_event_once(settings, redis_client, point):
    settings = settings.model_copy(update={"partitions": 1, "claim_idle_ms": 0})
    publish_runs(settings, runs=2, epochs=30, system_every=10)
    keys = Keys(settings.namespace, settings.partitions)
    published = redis_client.xlen(keys.stream(0))
    layout = DataLayout(settings.data_dir)

    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    crashed = run_worker(settings, crash_at=point)
    assert crashed.returncode == 0, crashed.stderr[-2000:]  # the RQ parent survives its killed work horse
    failed = FailedJobRegistry(queue=drain_queue(redis_client, settings))
    assert len(failed.get_job_ids()) == 1, crashed.stdout[-2000:]  # the work horse died: its job failed
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == published  # nothing acked
    written = {name: len(segments(layout, name)) for name in ("epoch", "system")}
    assert written == ({"epoch": 0, "system": 0} if point == "before_write" else {"epoch": 1, "system": 1})

    # The scheduler sees the dead job's lock, frees the partition, and a healthy worker reclaims the batch.
    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    Worker([drain_queue(redis_client, settings)], connection=redis_client).work(burst=True)

    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == 0
    copies = count_by_id(layout, "epoch")
    assert len(copies) == 60
    assert set(copies.values()) == ({1} if point == "before_write" else {2})  # the redelivered copy
    got = query(settings, "SELECT run_id, count(*) AS n, count(DISTINCT event_id) AS ids FROM epochs "
                          "GROUP BY run_id ORDER BY run_id").to_pylist()
    assert got == [{"run_id": "r0", "n": 30, "ids": 30}, {"run_id": "r1", "n": 30, "ids": 30}]
    total = sum(query(settings, f"SELECT count(*) AS n FROM {v}").to_pylist()[0]["n"]
                for v in ("epochs", "system", "run_started", "run_finished"))
    assert total == published
    runs = query(settings, "SELECT run_id, epochs, events, status FROM runs ORDER BY run_id").to_pylist()
    assert runs == [{"run_id": f"r{i}", "epochs": 30, "events": 35, "status": "completed"} for i in range(2)]


def test_crash_point_is_a_real_kill():
    code = f"import os; os.environ['{CRASH_ENV}']='x'; from workers.drain import crash_point; crash_point('x')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL
