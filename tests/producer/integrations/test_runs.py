"""The run an integration logs to: given or started on first use; finished only by whoever started it."""

from __future__ import annotations

from argparse import Namespace

import pytest

from producer.integrations.runs import RunHandle, quiet
from producer.run import start_run


def test_a_run_is_started_on_first_use_with_the_framework_config_under_the_users(recorder):
    handle = RunHandle("fw", project="p", name="n", config={"lr": 0.1, "seed": 1}, tags=["a"], publisher=recorder,
                       patience=2)
    run_id = handle.run_id
    handle.add_config(Namespace(lr=0.5, layers=2))  # what the framework knows; the user's lr wins
    assert not handle.started and recorder.events == []
    run = handle.run
    assert run.run_id == run_id and handle.run is run
    started = recorder.started
    assert (started.project, started.name, started.tags, started.patience) == ("p", "n", ["a"], 2)
    assert started.config == {"lr": 0.1, "layers": 2, "seed": 1}
    handle.add_config({"late": True})
    assert recorder.of_type("run_config")[0].config == {"late": True}
    handle.finish("completed")
    assert recorder.finished.status == "completed"


def test_without_a_project_runs_go_to_the_frameworks():
    assert RunHandle("keras").project == "keras"


def test_a_run_passed_in_is_used_and_left_for_its_owner_to_finish(recorder):
    with start_run("mine", publisher=recorder) as run:
        handle = RunHandle("fw", run, config={"batch": 8})
        assert handle.run is run and handle.run_id == run.run_id and handle.project == "mine"
        assert recorder.of_type("run_config")[0].config == {"batch": 8}
        handle.finish("completed")
        assert recorder.finished is None
    assert recorder.finished.status == "completed"
    assert len(recorder.of_type("run_finished")) == 1


def test_finish_run_true_finishes_a_run_passed_in(recorder):
    run = start_run("mine", publisher=recorder)
    RunHandle("fw", run, finish_run=True).finish("interrupted", "stopped")
    assert (recorder.finished.status, recorder.finished.error) == ("interrupted", "stopped")


def test_a_run_and_start_arguments_together_are_refused_before_training(recorder):
    run = start_run("mine", publisher=recorder)
    with pytest.raises(TypeError, match="either run= .* not both .*project=, patience="):
        RunHandle("fw", run, project="other", patience=3)
    with pytest.raises(TypeError, match="must be a producer.Run"):
        RunHandle("fw", object())  # type: ignore[arg-type]
    run.finish()


def test_a_failing_hook_never_reaches_the_training(caplog):
    class Hooks:
        @quiet
        def on_epoch_end(self, epoch):
            raise ValueError(f"bad epoch {epoch}")

    assert Hooks().on_epoch_end(3) is None
    assert Hooks().on_epoch_end(4) is None
    said = [r.getMessage() for r in caplog.records if "Hooks.on_epoch_end" in r.getMessage()]
    assert len(said) == 1 and "bad epoch 3" in said[0]  # once, with the reason
