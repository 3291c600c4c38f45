"""Real training processes: killed, terminated, failing. What reaches the stream must be whole, and once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from producer.spool import adopt_orphans, parse
from schemas.codec import decode
from tests.conftest import ROOT
from tests.producer.child import LONG_ERROR
from tests.producer.conftest import run_events, training_env

pytestmark = pytest.mark.slow


def child(mode: str, run_id: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.producer.child", mode, run_id], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never said {prefix!r}; stderr:\n{proc.stderr.read()}")


def spooled_on_disk(spool_dir: Path) -> list[tuple[str, int]]:
    """(stream, seq) of every whole record in the spool, read the way an adopter reads it."""
    found = []
    for segment in sorted(spool_dir.glob("*.seg")):
        found += [(record.seq_key, record.seq) for record, _ in parse(segment.read_bytes()).records]
    return found


def test_a_killed_process_spool_is_delivered_once_by_the_next(settings, redis_client, dead_url):
    """Done-when: a training process spools while no broker answers, is SIGKILLed mid-run; a new process
    with the same spool directory delivers what was spooled, exactly once."""
    run_id = f"killed-{uuid.uuid4().hex[:8]}"
    env = training_env(settings) | {"EPOCHSTREAM_REDIS_URL": dead_url}
    proc = child("spool", run_id, env)
    for _ in range(3):
        last = wait_for_line(proc, "spooled ")
    time.sleep(0.05)  # mid-run, likely mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()

    spool_dir = settings.resolved_spool_dir() / settings.namespace
    on_disk = spooled_on_disk(spool_dir)
    last_reported = int(last.split()[1])
    assert len(on_disk) >= last_reported + 2  # run_started and every epoch it reported spooled, at least
    # An explicit run id the broker could not be asked about starts at the time floor (producer.attempts).
    first = on_disk[0][1]
    assert [seq for _, seq in on_disk] == list(range(first, first + len(on_disk)))

    for attempt in range(2):  # the second process finds nothing left: delivered once
        deliverer = child("deliver", run_id, training_env(settings))
        assert wait_for_line(deliverer, "delivered") == "delivered True"
        assert deliverer.wait(timeout=30) == 0
        deliverer.stdout.close()
        deliverer.stderr.close()
        events = run_events(redis_client, settings, run_id)
        assert [e.seq for e in events] == [seq for _, seq in on_disk], f"attempt {attempt}"
        assert len({e.event_id for e in events}) == len(events)
        assert [e.epoch for e in events[1:]] == list(range(len(events) - 1))
    assert list(spool_dir.glob("*.seg")) == [] and list(spool_dir.glob("*.lock")) == []


def test_sigterm_publishes_interrupted_and_still_ends_the_process(settings, redis_client):
    run_id = f"term-{uuid.uuid4().hex[:8]}"
    proc = child("sigterm", run_id, training_env(settings))
    wait_for_line(proc, "training")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # the default action still happened
    proc.stdout.close()
    proc.stderr.close()
    events = run_events(redis_client, settings, run_id)
    finished = events[-1]
    assert finished.type == "run_finished" and finished.status == "interrupted"
    assert finished.exit_code == 128 + signal.SIGTERM and "SIGTERM" in finished.error
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_sigterm_chains_to_the_previous_handler(settings, redis_client):
    run_id = f"chain-{uuid.uuid4().hex[:8]}"
    proc = child("chained", run_id, training_env(settings))
    wait_for_line(proc, "training")
    proc.send_signal(signal.SIGTERM)
    assert wait_for_line(proc, "own handler ran") == "own handler ran"
    assert proc.wait(timeout=30) == 0  # that handler chose SystemExit(0)
    proc.stdout.close()
    proc.stderr.close()
    finished = run_events(redis_client, settings, run_id)[-1]
    assert finished.status == "interrupted" and finished.exit_code == 128 + signal.SIGTERM


@pytest.mark.parametrize("mode", ["fail", "fail-bare"])
def test_a_failing_run_reports_the_whole_error(settings, redis_client, mode):
    assert len(LONG_ERROR) > 300
    run_id = f"{mode}-{uuid.uuid4().hex[:8]}"
    proc = child(mode, run_id, training_env(settings))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert LONG_ERROR in stderr  # the exception still reached the caller (and the terminal)
    finished = run_events(redis_client, settings, run_id)[-1]
    assert finished.type == "run_finished" and finished.status == "failed" and finished.exit_code == 1
    kind = "ValueError" if mode == "fail" else "RuntimeError"
    assert finished.error == f"{kind}: {LONG_ERROR}"  # every character, none cut at 160
    assert finished.traceback.startswith("Traceback (most recent call last):")
    assert finished.traceback.rstrip().endswith(f"{kind}: {LONG_ERROR}")
    assert 'tests/producer/child.py", line' in finished.traceback
    if mode == "fail":
        assert "in load_shard" in finished.traceback


def test_spool_owner_lock_is_released_by_death_not_by_a_live_child(settings, dead_url):
    """A process holding its spool lock keeps adopters away; its death frees the lock at once."""
    env = training_env(settings) | {"EPOCHSTREAM_REDIS_URL": dead_url}
    proc = child("spool", f"lock-{uuid.uuid4().hex[:8]}", env)
    wait_for_line(proc, "spooled ")
    spool_dir = settings.resolved_spool_dir() / settings.namespace
    assert adopt_orphans(spool_dir, skip=set()) == []  # alive: not ours to take
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    adopted = adopt_orphans(spool_dir, skip=set())
    assert len(adopted) == 1 and decode(adopted[0].peek(1)[0].payload).type == "run_started"  # first in line
    adopted[0].release(delete_lock=False)


def test_ctrl_c_is_interrupted(settings, redis_client):
    run_id = f"int-{uuid.uuid4().hex[:8]}"
    proc = child("sigterm", run_id, training_env(settings))
    wait_for_line(proc, "training")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)  # KeyboardInterrupt went on up and ended the process
    proc.stdout.close()
    proc.stderr.close()
    finished = run_events(redis_client, settings, run_id)[-1]
    assert finished.status == "interrupted" and finished.exit_code == 128 + signal.SIGINT
    assert finished.error == "interrupted by SIGINT: KeyboardInterrupt"
    assert "KeyboardInterrupt" in finished.traceback


def test_signal_handlers_are_installed_from_the_main_thread_only(settings):
    script = textwrap.dedent("""
        import signal, threading
        from producer.testing import RecordingPublisher
        from producer import start_run
        from epochstream.settings import Settings

        publisher = RecordingPublisher(Settings(install_signal_handlers=True))
        thread = threading.Thread(target=lambda: start_run("t", publisher=publisher).finish())
        thread.start(); thread.join()
        print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        start_run("m", publisher=publisher).finish()
        print(signal.getsignal(signal.SIGTERM).__module__)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=training_env(settings), capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["True", "producer.lifecycle"], out.stderr
