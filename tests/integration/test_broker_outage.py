"""Redis SIGKILLed while drains run, restarted on the same port from its AOF: the `epochstream worker` process
stays up, every partition drains again, and every event is in the read model and SQL exactly once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from epochstream.broker import answers, free_port
from producer import Publisher, start_run
from schemas.keys import Keys, partition_of
from tests.conftest import ROOT, settings_env
from tests.integration.helpers import Seen, dead_letters, sql_view
from tests.processes import stop_processes
from tests.readmodel import epoch_numbers, summary

CLI = "from epochstream.cli import main; main()"
RUNS_PER_PARTITION, EPOCHS = 2, 300


class OwnRedis:
    """A redis-server of this test's own (so it may kill it): AOF fsynced on every write, so an acknowledged
    XADD survives the SIGKILL."""

    def __init__(self, directory: Path):
        self.directory, self.port, self.process = directory, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not answers(self.url):
            assert time.monotonic() < deadline and self.process.poll() is None, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def _run_ids(partitions: int) -> list[str]:
    ids: dict[int, list[str]] = {}
    i = 0
    while min((len(ids.get(p, [])) for p in range(partitions)), default=0) < RUNS_PER_PARTITION:
        run_id = f"o{i}"
        if len(ids.setdefault(partition_of(run_id, partitions), [])) < RUNS_PER_PARTITION:
            ids[partition_of(run_id, partitions)].append(run_id)
        i += 1
    return sorted(r for group in ids.values() for r in group)


def _all_drained(settings, run_ids: list[str], epochs: int, status: str | None) -> bool:
    for run_id in run_ids:
        stored = summary(settings, run_id)
        if stored is None or stored["epochs"] != epochs or (status and stored["status"] != status):
            return False
    return True


def _wait_for(condition, timeout: float, worker: subprocess.Popen) -> float:
    started = time.monotonic()
    while not condition():
        assert worker.poll() is None, "the worker process exited"
        assert time.monotonic() - started < timeout, "not drained in time"
        time.sleep(0.2)
    return time.monotonic() - started


def test_worker_survives_a_redis_sigkill_mid_job_and_every_partition_drains_again(settings, tmp_path):
    server = OwnRedis(tmp_path / "redis")
    server.start()
    settings = settings.model_copy(update={"redis_url": server.url, "partitions": 4, "drain_batch": 200})
    run_ids = _run_ids(settings.partitions)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-c", CLI, "worker", "--interval", "0.2", "--no-spool"],
                              env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    publisher = Publisher(settings)
    try:
        runs = [start_run(project="outage", name=r, run_id=r, publisher=publisher) for r in run_ids]
        for epoch in range(EPOCHS // 2):
            for run in runs:
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=4)
        assert publisher.flush(60)
        client = redis.Redis.from_url(server.url)
        _wait_for(lambda: client.exists(*(Keys(settings.namespace, settings.partitions).drain_lock(p)
                                          for p in range(settings.partitions))) > 0, 30, worker)
        client.close()
        server.kill()  # drains are mid-job: holding batches, lingering on their partitions
        time.sleep(3)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        server.start()  # same port, same AOF
        back = time.monotonic()
        for epoch in range(EPOCHS // 2, EPOCHS):
            for run in runs:
                run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1)}, samples=4)
        for run in runs:
            run.finish()
        assert publisher.flush(60)
        try:
            _wait_for(lambda: _all_drained(settings, run_ids, EPOCHS, "completed"), 30, worker)
        except AssertionError:
            states = {r: (s or {}).get("epochs") for r in run_ids for s in [summary(settings, r)]}
            c, keys = redis.Redis.from_url(server.url), Keys(settings.namespace, settings.partitions)
            diag = [(p, c.get(keys.drain_lock(p)), c.pttl(keys.drain_lock(p)), c.xinfo_groups(keys.stream(p)))
                    for p in range(settings.partitions)]
            raise AssertionError(f"{states}\n{diag}\n{(tmp_path / 'worker.log').read_text()[-6000:]}") from None
        print(f"\nall {len(run_ids)} runs drained {time.monotonic() - back:.1f}s after Redis came back")
        assert worker.poll() is None
    finally:
        publisher.close()
        stop_processes([worker])
        server.kill()
        log.close()
    for run_id in run_ids:
        assert epoch_numbers(settings, run_id) == list(range(EPOCHS)), run_id
    assert sql_view(settings) == {r: Seen("completed", EPOCHS, EPOCHS + 2, tuple(range(EPOCHS))) for r in run_ids}
    server.start()
    try:
        assert dead_letters(redis.Redis.from_url(server.url), settings) == 0
    finally:
        server.kill()
