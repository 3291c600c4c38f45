"""The S3 server stopped in the middle of ingest (moto's, on loopback, refusing connections for a while): the
drains keep their batches pending and say why, nothing is dead-lettered, and once it is back every event lands,
once."""

from __future__ import annotations

import subprocess
import sys
import time

from epochstream.layout import DataLayout
from epochstream.settings import settings_env
from schemas.keys import Keys
from tests.conftest import ROOT
from tests.processes import stop_processes
from tests.readmodel import content
from tests.s3 import S3Server, require_moto
from tests.workers.helpers import publish_runs
from workers import health
from workers.log_reader import count_by_identity

CLI = "from epochstream.cli import main; main()"
TYPES = ("run_started", "epoch", "system", "run_finished")


def _stored(settings) -> int:
    try:
        return len(content(settings)["events"])
    except AssertionError:  # no read model yet
        return 0


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_s3_down_mid_ingest_nothing_dead_lettered_everything_lands_after(settings, redis_client, tmp_path,
                                                                        monkeypatch):
    require_moto()
    server = S3Server()  # of this test's own: it is stopped and started again
    server.start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    settings = settings.model_copy(update={"log_url": f"s3://{server.fresh_bucket()}/log", "partitions": 2,
                                           "claim_idle_ms": 1000})
    keys = Keys(settings.namespace, settings.partitions)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-c", CLI, "worker", "--interval", "0.2"], env=settings_env(settings),
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        publish_runs(settings, runs=3, epochs=10, prefix="before")
        _wait(lambda: _stored(settings) == 3 * 12, 60, "the first runs to be stored")

        server.stop()  # connections refused from now on
        publish_runs(settings, runs=3, epochs=10, prefix="during")
        _wait(lambda: any("log store unavailable" in p["problem"]
                          for p in health.problems(redis_client, keys).values()), 60, "the drain to report the outage")
        time.sleep(3)  # several retries with back-off while it is down
        assert _stored(settings) == 3 * 12  # nothing of the second runs got through ...
        assert redis_client.xlen(keys.dlq) == 0  # ... and nothing was dead-lettered for it

        server.start()  # the same port, the same buckets
        _wait(lambda: _stored(settings) == 6 * 12, 90, "every event after the outage")
        _wait(lambda: not health.problems(redis_client, keys), 30, "the problem to clear")
    finally:
        stop_processes([worker])
        log.close()
        server.stop()
        server.start()  # for the checks below, which read the log
    try:
        assert redis_client.xlen(keys.dlq) == 0
        assert sum(redis_client.xpending(keys.stream(p), keys.group)["pending"] for p in range(2)) == 0
        layout = DataLayout.of(settings)
        copies: dict = {}
        for event_type in TYPES:
            copies.update(count_by_identity(layout, event_type))
        assert len(copies) == 6 * 12 and set(copies.values()) == {1}  # every event in the bucket, once
        runs = content(settings)["runs"]
        assert sorted(runs) == sorted([f"before{i}" for i in range(3)] + [f"during{i}" for i in range(3)])
        assert all(r["summary"]["status"] == "completed" and r["summary"]["epochs"] == 10 for r in runs.values())
    finally:
        server.stop()
