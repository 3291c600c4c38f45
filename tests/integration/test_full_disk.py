"""The data directory on a 20 MB tmpfs kept full while 8 runs x 500 epochs are ingested by real worker
processes, then freed: every event is in the read model, the API and SQL exactly once, nothing is in the DLQ,
and nobody had to do anything. Meanwhile `<ns>:health:{p}` says "disk full at ..." (for `epochstream status`)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from producer import Publisher, start_run
from schemas.keys import Keys
from tests.conftest import ROOT, ApiServer, settings_env
from tests.integration.helpers import Seen, api_view, dead_letters, sql_view
from tests.processes import stop_processes
from tests.readmodel import summary
from workers import health
from workers.catalog import ensure_catalog

CLI = "from epochstream.cli import main; main()"
RUNS, EPOCHS, BEFORE = 8, 500, 50  # BEFORE epochs of each run are drained before the disk fills up
FULL_S = 60.0  # how long the disk stays full (many drain attempts: the drains retry every <= 5 s)


def _fill(directory: Path) -> Path:
    """A file that takes every free byte of the file system (down to its last page)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def _wait(condition, timeout: float, workers, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        tail = log.read_text()[-4000:] if log is not None else ""
        assert all(w.poll() is None for w in workers), f"a worker process exited\n{tail}"
        assert time.monotonic() < deadline, f"{what}\n{tail}"
        time.sleep(0.25)


def _drained(settings, run_ids, epochs: int, status: str | None = None) -> bool:
    for run_id in run_ids:
        stored = summary(settings, run_id)
        if stored is None or stored["epochs"] != epochs or (status is not None and stored["status"] != status):
            return False
    return True


@pytest.fixture
def small_disk(tmp_path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_for_60s_during_ingest_loses_nothing_doubles_nothing_dead_letters_nothing(
        settings, redis_client, small_disk):
    settings = settings.model_copy(update={"data_dir": small_disk / "data", "max_deliveries": 2,
                                           "drain_max_s": 4.0, "claim_idle_ms": 1000})
    ensure_catalog(settings)
    env = {**settings_env(settings), "EPOCHSTREAM_MAX_DELIVERIES": "2", "EPOCHSTREAM_DRAIN_MAX_S": "4",
           "EPOCHSTREAM_CLAIM_IDLE_MS": "1000"}
    log = open(small_disk.parent / "workers.log", "w")  # noqa: SIM115 - closed below
    workers = [subprocess.Popen([sys.executable, "-c", CLI, "worker", "--interval", "0.2", "--no-spool"], env=env,
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT) for _ in range(2)]
    publisher = Publisher(settings)
    run_ids = [f"full{i}" for i in range(RUNS)]
    keys = Keys(settings.namespace, settings.partitions)
    api = None
    try:
        runs = [start_run(project="full", name=r, run_id=r, publisher=publisher) for r in run_ids]

        def log_epochs(first: int, last: int, pause_s: float = 0.0) -> None:
            for epoch in range(first, last):
                for run in runs:
                    run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": 2.0 / (epoch + 1)},
                                  samples=4)
                time.sleep(pause_s)

        log_epochs(0, BEFORE)
        assert publisher.flush(30)
        _wait(lambda: _drained(settings, run_ids, BEFORE), 60, workers, "the first epochs were not drained",
              Path(log.name))

        filler = _fill(small_disk)
        full_since = time.monotonic()
        ingest = threading.Thread(target=log_epochs, args=(BEFORE, EPOCHS, FULL_S / 2 / (EPOCHS - BEFORE)))
        ingest.start()  # the rest arrives while the disk is full
        ingest.join()
        assert publisher.flush(30)
        attempts = 0
        while time.monotonic() - full_since < FULL_S:
            problems = health.problems(redis_client, keys)
            attempts = max([attempts, *(int(p["attempts"]) for p in problems.values())])
            assert all(p["problem"].startswith(("disk full at", "storage error at")) for p in problems.values()), \
                problems
            assert dead_letters(redis_client, settings) == 0
            time.sleep(0.5)
        assert attempts >= 3, "the drains never tried to write on the full disk"
        assert any("disk full at" in p["problem"] for p in health.problems(redis_client, keys).values())
        filler.unlink()

        for run in runs:
            run.finish()
        assert publisher.flush(30)
        _wait(lambda: _drained(settings, run_ids, EPOCHS, "completed"), 90, workers,
              "not every event was drained after the disk was freed", Path(log.name))
        _wait(lambda: not health.problems(redis_client, keys), 30, workers, "a health problem stayed recorded")
        expected = {r: Seen("completed", EPOCHS, EPOCHS + 2, tuple(range(EPOCHS))) for r in run_ids}
        api = ApiServer(settings)
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            assert api_view(http, set(run_ids)) == expected
        assert sql_view(settings) == expected
        assert dead_letters(redis_client, settings) == 0
        assert all(redis_client.xpending(s, keys.group)["pending"] == 0 for s in keys.all_streams())
    finally:
        publisher.close()
        if api is not None:
            api.stop()
        stop_processes(workers)
        log.close()


