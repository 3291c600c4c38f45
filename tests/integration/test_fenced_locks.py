"""A worker paused past its lock (SIGSTOP, for real) while another drain takes the partition over: when it goes
on (SIGCONT) its late commit is refused by the fence token, it extends nobody's lock, and the read model
equals a rebuild with every event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rq.job import Job

from epochstream.faults import PAUSE_ENV
from schemas.keys import Keys
from tests.conftest import ROOT, settings_env
from tests.integration.helpers import dead_letters
from tests.readmodel import content, epoch_numbers
from tests.workers.helpers import publish_runs
from workers import locks
from workers.rebuild import rebuild
from workers.scheduling import schedule_once

CLI = "from epochstream.cli import main; main()"


def _burst_worker(settings, **extra_env: str) -> subprocess.Popen:
    env = {**settings_env(settings), **extra_env}
    return subprocess.Popen([sys.executable, "-c", CLI, "worker", "--burst", "--no-scheduler", "--no-spool"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stopped_child(parent: int, timeout: float = 60) -> int:
    """The pid of `parent`'s child (rq's work horse) once it has stopped itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        for child in children:
            stat = Path(f"/proc/{child}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "T":
                return int(child)
        time.sleep(0.05)
    raise AssertionError("the work horse never reached its pause point")


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_worker_stopped_past_its_lock_is_refused_by_the_fence_and_extends_no_lock(settings, redis_client):
    settings = settings.model_copy(update={"partitions": 1, "claim_idle_ms": 0})
    runs = publish_runs(settings, runs=3, epochs=20, system_every=5)
    keys = Keys(settings.namespace, settings.partitions)
    lock = keys.drain_lock(0)
    assert schedule_once(redis_client, settings, settings.redis_url) == 1
    first_job = locks.holder_of(redis_client, lock).id

    paused = _burst_worker(settings, **{PAUSE_ENV: "after_write"})
    horse = None
    try:
        horse = _stopped_child(paused.pid)  # its batch is in the log, not yet committed to the read model
        _until(lambda: redis_client.exists(lock) == 0, 30, "the stopped drain's lock never lapsed")
        assert schedule_once(redis_client, settings, settings.redis_url) == 1  # the takeover
        takeover = _burst_worker(settings)
        assert takeover.wait(timeout=120) == 0, takeover.stdout.read()[-3000:]
        assert [len(epoch_numbers(settings, run)) for run in runs] == [20, 20, 20]
        incremental = content(settings)

        third = locks.Holder("drain", "someone-else")
        assert locks.take(redis_client, lock, third, ttl_s=300)
        os.kill(horse, signal.SIGCONT)
        assert paused.wait(timeout=120) == 0, paused.stdout.read()[-3000:]
    finally:
        for proc in (paused,):
            if proc.poll() is None:
                if horse:
                    os.kill(horse, signal.SIGCONT)
                proc.kill()
                proc.wait()

    result = Job.fetch(first_job, connection=redis_client).return_value()
    assert result["refused"] and "fence token" in result["refusal"], result
    assert result["stored"] == 0
    assert locks.holder_of(redis_client, lock) == third and redis_client.pttl(lock) > 200_000  # not extended
    assert redis_client.xpending(keys.stream(0), keys.group)["pending"] == 0
    assert dead_letters(redis_client, settings) == 0
    assert content(settings) == incremental  # the late drain changed nothing
    rebuild(settings)
    assert content(settings) == incremental
