"""The multi-host deployment of issue 16, real parts throughout: the log on S3 (moto's server on loopback),
the read model on PostgreSQL, publisher processes, two worker processes ("hosts") of which one has every work
horse SIGKILLed mid-batch (after its segments reached the bucket, before the read-model commit), then every
event exactly once through the API and through SQL."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from rq.registry import FailedJobRegistry

from epochstream.faults import CRASH_ENV
from epochstream.layout import DataLayout
from epochstream.settings import settings_env
from schemas.keys import Keys
from tests.conftest import ROOT, ApiServer
from tests.integration.helpers import api_view, sql_view
from tests.processes import stop_processes
from tests.workers.publisher_process import SYSTEM_EVERY
from tests.workers.test_crash import CLI, run_worker
from workers.catalog import query
from workers.log_reader import count_by_identity
from workers.scheduling import drain_queue, schedule_once

PUBLISHERS, EPOCHS = 32, 200
PER_RUN = 1 + EPOCHS + EPOCHS // SYSTEM_EVERY + 1
TYPES = ("run_started", "epoch", "system", "run_finished")


def _pending(client, keys: Keys) -> int:
    return sum(client.xpending(keys.stream(p), keys.group)["pending"] for p in range(keys.partitions))


def test_s3_log_and_postgresql_every_event_once_with_a_worker_killed_mid_batch(s3_settings, postgres_url,
                                                                                redis_client, tmp_path):
    settings = s3_settings.model_copy(update={"read_model_url": postgres_url, "partitions": 4, "claim_idle_ms": 0,
                                              "drain_batch": 60})
    env = settings_env(settings)
    publishers = [subprocess.Popen([sys.executable, str(ROOT / "tests/workers/publisher_process.py"), str(i),
                                    str(EPOCHS)], env=env, cwd=ROOT) for i in range(PUBLISHERS)]
    assert [p.wait(timeout=180) for p in publishers] == [0] * PUBLISHERS
    keys = Keys(settings.namespace, settings.partitions)
    published = sum(redis_client.xlen(keys.stream(p)) for p in range(settings.partitions))
    assert published == PUBLISHERS * PER_RUN

    assert schedule_once(redis_client, settings, settings.redis_url) == settings.partitions
    worker = [sys.executable, "-c", CLI, "worker", "--burst", "--no-scheduler"]
    logs = [open(tmp_path / f"host-{i}.log", "w") for i in range(2)]  # noqa: SIM115 - closed below
    # Host 1: each of its work horses is SIGKILLed after writing its batch to the bucket.
    doomed = subprocess.Popen(worker, env={**env, CRASH_ENV: "after_write"}, cwd=ROOT, stdout=logs[0],
                              stderr=subprocess.STDOUT)
    failed = FailedJobRegistry(queue=drain_queue(redis_client, settings))
    healthy = None
    try:
        deadline = time.monotonic() + 120
        while not failed.get_job_ids() and doomed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failed.get_job_ids(), "host 1's work horse was never killed"
        # Host 2 drains beside it from now on.
        healthy = subprocess.Popen(worker, env=env, cwd=ROOT, stdout=logs[1], stderr=subprocess.STDOUT)
        assert doomed.wait(180) == 0 and healthy.wait(180) == 0
    finally:
        stop_processes([p for p in (doomed, healthy) if p is not None])
        for log in logs:
            log.close()

    for _ in range(10):  # the scheduler frees the killed jobs' partitions; a healthy host redoes their batches
        if not _pending(redis_client, keys):
            break
        schedule_once(redis_client, settings, settings.redis_url)
        recovered = run_worker(settings)
        assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert _pending(redis_client, keys) == 0
    assert redis_client.xlen(keys.dlq) == 0  # nothing dead-lettered

    layout = DataLayout.of(settings)
    assert not (settings.data_dir / "log").exists()  # every segment went to the bucket
    copies: dict = {}
    for event_type in TYPES:
        copies.update(count_by_identity(layout, event_type))
    assert len(copies) == published  # every event in the log ...
    assert max(copies.values()) == 2  # ... and a killed batch's copy beside its redelivered one

    expected = {f"p{i}" for i in range(PUBLISHERS)}
    api = ApiServer(settings)
    try:
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            seen = api_view(http, expected)
    finally:
        api.stop()
    assert all(s.status == "completed" and s.events == PER_RUN and s.epoch_numbers == tuple(range(EPOCHS))
               for s in seen.values()), seen
    assert sql_view(settings) == seen  # SQL over the bucket counts each event once too
    counts = {t: query(settings, f"SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM {t}").to_pylist()[0]
              for t in ("run_started", "epochs", "system", "run_finished")}
    assert sum(c["n"] for c in counts.values()) == published
    assert all(c["n"] == c["ids"] for c in counts.values())
