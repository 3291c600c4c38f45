"""The demo's pieces: each real PyTorch training (tiny), and the whole `epochstream demo` once, small."""

from __future__ import annotations

import math
import subprocess
import sys

import psutil
import pytest

from epochstream.readmodel.judged import trends
from epochstream.readmodel.reader import ReadModelReader
from tests.conftest import settings_env
from tests.draining import drain_all
from tests.people.conftest import ROOT, epochstream
from tests.readmodel import summary as stored_summary


def train(settings, kind: str, epochs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "epochstream.demo.train", kind, "--epochs", str(epochs)],
                            env=settings_env(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_each_training_publishes_what_it_promises(settings, redis_client):
    procs = {kind: train(settings, kind, epochs)
             for kind, epochs in (("converge", 2), ("overfit", 2), ("diverge", 8), ("crash", 3))}
    results = {kind: (p.communicate(timeout=120), p.returncode) for kind, p in procs.items()}
    run_ids = {}
    for kind, ((out, err), code) in results.items():
        assert out.startswith("run_id "), (kind, out, err)
        run_ids[kind] = out.split()[1]
        assert code == (1 if kind == "crash" else 0), (kind, err)
    assert "Traceback" in results["crash"][0][1]  # the exception still reaches the caller

    drain_all(redis_client, settings, via_rq=True)
    reader = ReadModelReader(settings.data_dir)

    def summary(kind):
        return stored_summary(settings, run_ids[kind])

    def epochs(kind):
        return [e.metrics for e in reader.epochs(run_ids[kind])]

    converge = epochs("converge")
    assert summary("converge")["status"] == "completed" and len(converge) == 2
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "learning_rate", "gradient_norm",
            "epoch_duration"} <= set(converge[0])
    assert converge[1]["val/loss"] < converge[0]["val/loss"]  # it learns
    assert [e.samples for e in reader.epochs(run_ids["converge"])] == [1500, 1500]
    assert summary("overfit")["status"] == "completed" and summary("overfit")["config"]["train_samples"] == 96

    diverge = [m["val/loss"] for m in epochs("diverge")]
    assert all(math.isfinite(v) for v in diverge[:6]) and math.isnan(diverge[-1])  # NaN is stored, not dropped
    diverged = reader.run(run_ids["diverge"])
    assert trends(diverged.summary, diverged.trend_state)["is_diverging"] is True  # as the API judges it

    crash = summary("crash")
    assert crash["status"] == "failed" and len(epochs("crash")) == 1  # it died in epoch 1, mid-run
    assert crash["error"].startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied")
    assert "epochstream/demo/train.py" in crash["traceback"] and "out = s.model(xb)" in crash["traceback"]


def demo_processes(data_dir) -> list[psutil.Process]:
    """Every process still running with this data directory in its environment."""
    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("EPOCHSTREAM_DATA_DIR", "").startswith(str(data_dir)):
                left.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return left


@pytest.mark.slow
def test_demo_runs_to_its_summary_and_leaves_nothing_behind(settings):
    data_dir = settings.data_dir.resolve()
    result = epochstream(settings, "demo", "--epochs", "4", "--epoch-delay", "0", "--workers", "1", "--port", "0",
                         env={"EPOCHSTREAM_REDIS_URL": ""}, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "summary" in out and "Traceback" not in out + result.stderr
    lines = out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.strip() == "summary"):]
    rows = {kind: next(line for line in table if line.startswith(f"│ demo-{kind}"))
            for kind in ("converge", "overfit", "diverge", "crash")}
    assert "completed" in rows["converge"] and "failed" in rows["crash"]
    assert "investigate" in rows["crash"]
    assert "mat1 and mat2 shapes cannot be multiplied" in out
    for hint in ("Where to look next", "epochstream up", "curl http://", "epochstream analyze", "epochstream sql"):
        assert hint in out, hint
    assert (data_dir / "broker").is_dir()  # the embedded broker kept its data under the data directory
    assert demo_processes(data_dir) == []
