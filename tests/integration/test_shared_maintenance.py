"""Hosts that share the log on S3 (or the read model in PostgreSQL) each keep their own data directory, so the
directory's flock cannot keep their maintenance apart: two compactions on two hosts would merge the same
parts, one host's leftover cleaning would drop the generation another host's rebuild is building. The lock is
then also held on the queue broker, for every host at once; it lapses when its holder is SIGKILLed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from epochstream.cli import app as cli_app
from epochstream.layout import DataLayout
from epochstream.settings import settings_env
from tests.conftest import ROOT
from tests.draining import drain_all
from tests.readmodel import content
from tests.workers.helpers import publish_runs
from workers import locks
from workers.compaction import compact
from workers.log_reader import count_by_id
from workers.maintenance_lock import MaintenanceBusy, maintenance_lock, shared_lock_for
from workers.rebuild import rebuild

HOLD = """
import sys, time
from epochstream.layout import DataLayout
from epochstream.settings import Settings
from workers.maintenance_lock import maintenance_lock, shared_lock_for
settings = Settings()
with maintenance_lock(DataLayout.of(settings), "compact", 0, shared_lock_for(settings)):
    print("held", flush=True)
    time.sleep(120)
"""


def _two_hosts(settings, redis_client, tmp_path, postgres_url):
    """Two hosts of one deployment: the log on S3, the read model in PostgreSQL, a data directory each."""
    host_a = settings.model_copy(update={"drain_batch": 7, "data_dir": tmp_path / "host-a",
                                         "read_model_url": postgres_url})
    publish_runs(host_a, runs=3, epochs=12, system_every=3)
    drain_all(redis_client, host_a)
    return host_a, host_a.model_copy(update={"data_dir": tmp_path / "host-b"})


def test_what_is_shared_decides_where_the_lock_is_held(settings, postgres_url):
    assert shared_lock_for(settings) is None  # local log, SQLite: the flock is enough
    for shared in ({"log_url": "s3://bucket/log"}, {"read_model_url": postgres_url}):
        lock = shared_lock_for(settings.model_copy(update=shared))
        assert lock is not None and lock.key == f"{settings.namespace}:maintenance"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"  # nothing listens there once closed
    with pytest.raises(MaintenanceBusy, match="shared between hosts.*does not answer.*Retry when the broker is up"):
        shared_lock_for(settings.model_copy(update={"log_url": "s3://bucket/log", "queue_url": dead}))


def test_a_maintenance_job_on_one_host_excludes_those_of_another(s3_settings, redis_client, tmp_path, postgres_url):
    host_a, host_b = _two_hosts(s3_settings, redis_client, tmp_path, postgres_url)
    before = content(host_b)
    with maintenance_lock(DataLayout.of(host_a), "rebuild", 0, shared_lock_for(host_a)):
        assert not DataLayout.of(host_b).maintenance_lock.exists()  # nothing on host B's disk says so
        with pytest.raises(MaintenanceBusy, match=rf"`rebuild` on {socket.gethostname()} \(pid \d+.*is maintaining "
                                                  r"the shared deployment"):
            compact(host_b, min_age_s=0)
        with pytest.raises(MaintenanceBusy, match="Retry when it is done"):
            rebuild(host_b)
        result = CliRunner().invoke(cli_app, ["compact", "--data-dir", str(host_b.data_dir), "--min-age", "0"],
                                    env=settings_env(host_b))
        assert result.exit_code == 1 and "is maintaining the shared deployment" in result.output, result.output
        assert "Traceback" not in result.output
    assert sum(r.files_in for r in compact(host_b, min_age_s=0)) > 0  # free again: host B goes ahead
    assert set(count_by_id(DataLayout.of(host_a), "epoch").values()) == {1}
    rebuild(host_b)
    assert content(host_a) == before


@pytest.mark.parametrize("where", ["this host", "another host"])
def test_the_shared_lock_of_a_job_killed_midway_is_free_again(s3_settings, redis_client, tmp_path, postgres_url,
                                                              where):
    """Killed on this host, the next job sees the holder's pid is gone and takes the lock at once; killed on
    another host (its own UTS namespace: another hostname), the lock lapses within its TTL."""
    host_a, host_b = _two_hosts(s3_settings, redis_client, tmp_path, postgres_url)
    argv = [sys.executable, "-c", HOLD]
    if where == "another host":
        argv = ["unshare", "--uts", "sh", "-c", 'hostname epochstream-other-host && exec "$@"', "sh", *argv]
    holder = subprocess.Popen(argv, env=settings_env(host_a), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()[-2000:]
        with pytest.raises(MaintenanceBusy, match="epochstream-other-host" if where == "another host" else "pid"):
            # heartbeated: alive, it outlives its TTL
            compact(host_b, min_age_s=0, wait_s=locks.TTL_S + 1 if where == "another host" else 0.5)
        holder.kill()
        holder.wait(timeout=10)
        started = time.monotonic()  # how long taking the lock waits, not the compaction after it
        with maintenance_lock(DataLayout.of(host_b), "compact", 30, shared_lock_for(host_b)):
            waited = time.monotonic() - started
        assert sum(r.files_in for r in compact(host_b, min_age_s=0)) > 0
    finally:
        holder.kill()
        holder.wait(timeout=10)
    if where == "this host":
        # no TTL to wait out: the holder's pid is gone (its last heartbeat kept the lock TTL_S - 1 s at least)
        assert waited < locks.TTL_S - 2, waited
    else:
        assert locks.TTL_S - 2 < waited < locks.TTL_S + 5, waited
    assert set(count_by_id(DataLayout.of(host_b), "epoch").values()) == {1}
