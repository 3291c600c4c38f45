"""Done-when of the cluster issue, on loopback: streams on a 3-master Redis Cluster, RQ and the drain locks on a
standalone control Redis, `epochstream up` on host h1 and an `epochstream worker` on host h2 (own hostnames
through `unshare --uts`), paced publisher processes, one master SIGSTOPped for 10 s mid-run.

Then it counts: every event once in the Parquet log, in SQL and in the API; the workers SIGSTOPped while a
run is published: the ingest lag gauge of `/metrics` rises, and falls to 0 once they go on; `status`,
`dlq list`, `rebuild` and `compact` work against the cluster.

Scale: EPOCHSTREAM_CLUSTER_SCALE=PUBLISHERSxEPOCHS (default 32x200, the issue's; ~35 s on an idle host).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from epochstream.broker import connect, free_port
from epochstream.layout import DataLayout
from producer import Publisher, start_run
from schemas.keys import Keys
from tests.conftest import ROOT, settings_env
from tests.producer.servers import wait_until
from workers.catalog import query
from workers.log_reader import count_by_id

pytestmark = pytest.mark.slow

PUBLISHERS, EPOCHS = (int(x) for x in os.environ.get("EPOCHSTREAM_CLUSTER_SCALE", "32x200").split("x"))
PER_RUN = 1 + EPOCHS + 1  # run_started, epochs, run_finished
PAUSE_S = 0.06  # between epochs: a publisher runs for about EPOCHS * PAUSE_S seconds
MASTER_STOP_S = 10.0
CLI = [sys.executable, "-c", "from epochstream.cli import main; main()"]


def on_host(name: str, args: list[str]) -> list[str]:
    """`args` run with their own hostname (a UTS namespace), where this machine allows it."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0:
        return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *args]
    return args


def wait_for(predicate, timeout: float, what: str):
    return wait_until(predicate, timeout, what)


def metrics(api: str) -> dict[str, dict[tuple, float]]:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def ingest_lag(api: str) -> float:
    return max(metrics(api)["epochstream_ingest_lag_seconds"].values())


def worker_groups(up: subprocess.Popen, h2: subprocess.Popen) -> list[int]:
    """Process groups of every RQ worker (its work horse included): up's worker children and h2's worker."""
    children = [c for c in psutil.Process(up.pid).children(recursive=True) if "worker" in " ".join(c.cmdline())]
    return sorted({os.getpgid(c.pid) for c in children} | {os.getpgid(h2.pid)})


def signal_groups(groups: list[int], sig: int) -> None:
    for group in groups:
        os.killpg(group, sig)


def api_epochs(api: str, run_id: str) -> list[int]:
    answer = httpx.get(f"{api}/runs/{run_id}/epochs", timeout=10)
    return [row["epoch"] for row in answer.json()["epochs"]] if answer.status_code == 200 else []


def test_cluster_two_hosts_master_stopped_nothing_lost_nothing_doubled(cluster, cluster_settings, tmp_path):
    settings = cluster_settings
    env = settings_env(settings) | {"EPOCHSTREAM_EXIT_FLUSH_S": "60", "NO_COLOR": "1", "COLUMNS": "200"}
    keys = Keys(settings.namespace, settings.partitions)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "up.log", "w") as up_log, open(logs / "h2.log", "w") as h2_log:
        up = subprocess.Popen(on_host("h1", [*CLI, "up", "--workers", "1", "--port", str(port), "--interval", "0.2"]),
                              env=env, cwd=ROOT, stdout=up_log, stderr=subprocess.STDOUT, start_new_session=True)
        h2 = subprocess.Popen(on_host("h2", [*CLI, "worker", "--interval", "0.2"]), env=env, cwd=ROOT,
                              stdout=h2_log, stderr=subprocess.STDOUT, start_new_session=True)
    publishers: list[subprocess.Popen] = []
    stopped: list[int] = []
    try:
        wait_for(lambda: "ready:" in (logs / "up.log").read_text() or up.poll() is not None, 90, "`up` to be ready")
        assert up.poll() is None, (logs / "up.log").read_text()

        publishers = [subprocess.Popen([sys.executable, str(ROOT / "tests/cluster/publisher.py"), str(i), str(EPOCHS),
                                        str(PAUSE_S)], env=env, cwd=ROOT) for i in range(PUBLISHERS)]
        # The master holding partition 0 stops mid-run (no replica: its slots answer nothing for 10 s).
        streams = connect(settings.redis_url)
        wait_for(lambda: sum(streams.xlen(s) for s in keys.all_streams()) > PUBLISHERS, 60, "events flowing")
        owner = next(i for i, node in enumerate(cluster.nodes)
                     if streams.get_node_from_key(keys.stream(0)).port == node.port)
        cluster.pause(owner)
        paused_at = time.monotonic()
        assert any(p.poll() is None for p in publishers), "the master must stop while publishers still publish"
        time.sleep(MASTER_STOP_S)
        cluster.resume(owner)
        assert time.monotonic() - paused_at >= MASTER_STOP_S
        assert [p.wait(timeout=120) for p in publishers] == [0] * PUBLISHERS

        expected = PUBLISHERS * PER_RUN
        layout = DataLayout(settings.data_dir)

        def all_stored() -> dict[str, int] | None:
            stored: dict[str, int] = {}
            for event_type in ("run_started", "epoch", "run_finished"):
                stored.update(count_by_id(layout, event_type))
            return stored if len(stored) >= expected else None

        stored = wait_for(all_stored, 90, "every event in the log")
        assert len(stored) == expected and set(stored.values()) == {1}  # each once, none doubled
        for i in range(PUBLISHERS):
            assert wait_for(lambda i=i: api_epochs(api, f"c{i}") == list(range(EPOCHS)), 60, f"run c{i} in the API")
        assert query(settings, "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM epochs").to_pylist() == [
            {"n": PUBLISHERS * EPOCHS, "ids": PUBLISHERS * EPOCHS}]
        assert httpx.get(f"{api}/readyz", timeout=10).status_code == 200

        # Workers stopped on both hosts while a run is published: the lag gauge rises, then falls to 0.
        wait_for(lambda: ingest_lag(api) == 0.0, 30, "lag 0 once caught up")
        stopped = worker_groups(up, h2)
        signal_groups(stopped, signal.SIGSTOP)
        late = Publisher(settings)
        with start_run(project="cluster", run_id="late", publisher=late) as run:
            for epoch in range(5):
                run.log_epoch(epoch, {"val/loss": 1.0}, samples=1)
        assert late.flush(30)
        late.close()
        first = wait_for(lambda: ingest_lag(api), 10, "a lag while the workers are stopped")
        time.sleep(1.5)
        second = ingest_lag(api)
        assert 0 < first < second
        signal_groups(stopped, signal.SIGCONT)
        stopped = []
        wait_for(lambda: ingest_lag(api) == 0.0, 60, "the lag to fall to 0 after the workers go on")
        assert api_epochs(api, "late") == list(range(5))

        # A poison entry becomes a dead letter; the figures say so, in /metrics and `status`.
        streams.xadd(keys.stream(3), {b"e": b"not an event"})
        wait_for(lambda: metrics(api)["epochstream_dead_letters"][()] == 1, 30, "the dead letter counted")
        figures = metrics(api)
        assert figures["epochstream_events_stored"][()] == expected + 7
        assert figures["epochstream_broker_up"][()] == 1 and figures["epochstream_queue_broker_up"][()] == 1
        assert figures["epochstream_drain_batch_duration_seconds_count"][()] > 0
        assert set(figures["epochstream_stream_length"]) == {(("partition", str(p)),) for p in range(8)}
        assert any(dict(labels)["route"] == "/runs/{run_id}/epochs"
                   for labels in figures["epochstream_api_request_duration_seconds_count"])

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)

        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "ingest lag (max over partitions): 0.0s" in status.stdout and "dead letters: 1" in status.stdout
        listed = cli("dlq", "list")
        assert listed.returncode == 0 and "1 dead letter(s)" in listed.stdout, listed.stderr
        rebuilt = cli("rebuild", "--wait", "60")
        assert rebuilt.returncode == 0 and f"{PUBLISHERS + 1} run(s)" in rebuilt.stdout, rebuilt.stderr
        compacted = cli("compact", "--min-age", "0")
        assert compacted.returncode == 0, compacted.stderr
        assert api_epochs(api, "c0") == list(range(EPOCHS))
        assert query(settings, "SELECT count(DISTINCT event_id) AS ids FROM epochs").to_pylist() == [
            {"ids": PUBLISHERS * EPOCHS + 5}]
    finally:
        if stopped:
            signal_groups(stopped, signal.SIGCONT)
        for p in publishers:
            if p.poll() is None:
                p.kill()
        for proc, sig in ((h2, signal.SIGTERM), (up, signal.SIGINT)):
            if proc.poll() is None:
                proc.send_signal(sig)
        for proc in (h2, up):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
