"""`epochstream up` as a user runs it: a real subprocess with its embedded broker, workers, scheduler, API."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from epochstream.broker import announced_url
from producer import Publisher, start_run
from tests.conftest import free_port, settings_env
from tests.people.conftest import CLI, ROOT, one_clear_line
from tests.readmodel import summary as stored_summary

pytestmark = pytest.mark.slow


class Up:
    def __init__(self, settings, port: int, log: Path):
        self.env = settings_env(settings)
        self.env.pop("EPOCHSTREAM_REDIS_URL")  # no URL: the embedded broker under <data_dir>/broker
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([*CLI, "up", "--port", str(port), "--workers", "1", "--interval", "0.2"],
                                         env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            if "ready:" in log.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"`up` did not get ready: {log.read_text()}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def completed(url: str, run_id: str):
    try:
        answer = httpx.get(f"{url}/runs/{run_id}", timeout=2)
    except httpx.HTTPError:
        return None
    return answer.status_code == 200 and answer.json()["status"] == "completed" and answer.json()


def publish(settings, name: str, epochs: int = 3) -> str:
    publisher = Publisher(settings.model_copy(update={"redis_url": None}))  # finds the broker `up` announced
    with start_run(project="up", name=name, publisher=publisher) as run:
        for epoch in range(epochs):
            run.log_epoch(epoch, {"train/loss": 1.0 / (epoch + 1), "val/loss": 1.2 / (epoch + 1)}, samples=8)
    assert publisher.flush(10)
    publisher.close()
    return run.run_id


def test_up_serves_refuses_a_second_and_drains_on_ctrl_c(settings, tmp_path):
    port = free_port()
    up = Up(settings, port, tmp_path / "up.log")
    try:
        out = up.log.read_text()
        for component in ("broker", "workers", "scheduler", "api"):
            assert any(line.startswith(component) for line in out.splitlines()), out
        assert str(settings.data_dir.resolve() / "broker") in out and up.url in out
        assert httpx.get(f"{up.url}/healthz").status_code == 200

        first = publish(settings, "first")
        summary = wait_for(lambda: completed(up.url, first))
        assert summary["epochs"] == 3 and summary["best_epoch"] == 2

        second = subprocess.run([*CLI, "up", "--port", str(free_port())], env=up.env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert "already running" in one_clear_line(second) and str(up.proc.pid) in second.stderr

        late = publish(settings, "published-just-before-ctrl-c")
        broker = announced_url(settings.model_copy(update={"redis_url": None}))
        assert up.interrupt() == 0, up.log.read_text()
    finally:
        up.kill()
    out = up.log.read_text()
    assert "drained: every event published so far is in the log" in out and "Traceback" not in out
    summary = stored_summary(settings, late)
    assert summary["status"] == "completed" and summary["epochs"] == 3  # drained before `up` exited
    assert not (settings.data_dir / "stack.json").exists()
    with pytest.raises(redis.ConnectionError):  # the broker is gone with it
        redis.Redis.from_url(broker, socket_connect_timeout=1).ping()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{up.url}/healthz", timeout=1)

    # A restart on the same data directory finds the broker's state where it was left (append-only file).
    again = Up(settings, free_port(), tmp_path / "up2.log")
    try:
        client = redis.Redis.from_url(announced_url(settings.model_copy(update={"redis_url": None})))
        streams = [f"{settings.namespace}:events:{{{p}}}" for p in range(settings.partitions)]
        groups = [g["name"] for s in streams if client.exists(s) for g in client.xinfo_groups(s)]
        assert b"ingest" in groups
        assert completed(again.url, first) and completed(again.url, late)
        assert again.interrupt() == 0
    finally:
        again.kill()


def test_up_after_a_killed_up_takes_over_cleanly(settings, tmp_path):
    """kill -9 of `up`: its children follow it (no orphan holds the API port), and the next `up` stops the
    broker it left (two servers must never share one append-only file) and serves the same data."""
    port = free_port()
    first = Up(settings, port, tmp_path / "up1.log")
    try:
        run_id = publish(settings, "before-the-kill")
        wait_for(lambda: completed(first.url, run_id))
        children = psutil.Process(first.proc.pid).children()
        assert len(children) >= 4  # broker, API, worker, scheduler
    finally:
        first.kill()
    psutil.wait_procs([c for c in children if "valkey" not in c.name()], timeout=30)
    assert all(not c.is_running() or "valkey" in c.name() for c in children)

    second = Up(settings, port, tmp_path / "up2.log")  # the same API port: free again
    try:
        assert "stopped the broker an earlier, killed `up` left running" in second.log.read_text()
        assert completed(second.url, run_id)
        assert second.interrupt() == 0
    finally:
        second.kill()
    assert all(not c.is_running() for c in children)
