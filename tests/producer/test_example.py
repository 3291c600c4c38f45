"""The PyTorch example, run as a user would, against the real Redis; and the library's test helpers."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from producer.testing import RecordingPublisher, recording_run
from schemas.epoch import CORE_METRICS
from tests.conftest import ROOT
from tests.producer.conftest import stream_entries, training_env

EXAMPLE = ROOT / "examples" / "train_pytorch.py"


def test_the_example_uses_the_library_in_under_15_lines():
    lines = EXAMPLE.read_text().splitlines()
    marked = [line for line in lines if line.rstrip().endswith("# epochstream")]
    assert 0 < len(marked) < 15
    words = ("from producer", "start_run(", "EpochAccumulator(", "acc.", "run.log_")
    unmarked = [line for line in lines if any(w in line for w in words) and line not in marked]
    assert unmarked == []


@pytest.mark.slow
def test_the_example_trains_and_its_epochs_reach_the_stream(settings, redis_client):
    project = f"example-{settings.namespace}"
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "3", "--samples", "1000", "--batch-size", "96",
                           "--project", project], cwd=ROOT, env=training_env(settings), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    events = [event for _, event in stream_entries(redis_client, settings)]
    started = [e for e in events if e.type == "run_started"]
    assert len(started) == 1 and started[0].project == project
    assert started[0].config["epochs"] == 3 and started[0].torch_version
    epochs = [e for e in events if e.type == "epoch"]
    assert [e.epoch for e in epochs] == [0, 1, 2]
    assert all(e.samples == 800 for e in epochs)  # 800 training samples; the last batch of 96 is short
    for epoch in epochs:
        assert set(epoch.metrics) == set(CORE_METRICS)
        assert all(math.isfinite(v) for v in epoch.metrics.values())
        assert 0.0 <= epoch.metrics["val/accuracy"] <= 1.0
    assert epochs[-1].metrics["train/loss"] < epochs[0].metrics["train/loss"]  # it learns
    finished = events[-1]
    assert finished.type == "run_finished" and finished.status == "completed"
    assert f"run {finished.run_id} done" in proc.stdout


def test_recording_publisher_round_trips_through_the_real_codec():
    publisher = RecordingPublisher()
    with recording_run(settings=publisher.settings) as run:
        run.log_epoch(0, {"train/loss": float("nan")})
    recorded = run.publisher
    assert recorded is not publisher  # recording_run makes its own
    assert math.isnan(recorded.metric("train/loss")[0])  # NaN survived encode -> decode
    assert recorded.warnings == ["train/loss: NaN"]
    assert recorded.flush() and recorded.close()


def test_recording_run_records_a_failure_and_reraises():
    with pytest.raises(ZeroDivisionError), recording_run() as run:
        1 / 0  # noqa: B018
    assert run.publisher.finished.status == "failed"
    assert "ZeroDivisionError: division by zero" in run.publisher.finished.traceback
