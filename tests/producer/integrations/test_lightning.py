"""A real Lightning `Trainer.fit` (CPU, data made here) with `EpochstreamLogger`: every value the Trainer
logged arrives, per step and per epoch, under our names; a crash is recorded with its traceback."""

from __future__ import annotations

import signal
import traceback
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

from producer import Publisher
from producer.integrations.lightning import EpochstreamLogger, strip_suffix
from producer.run import Run, start_run
from tests.producer.conftest import run_events
from tests.producer.integrations.pipeline import drained, served
from tests.producer.integrations.readme import run_readme_example

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore:.*LeafSpec")

EPOCHS, SAMPLES, BATCH = 5, 32, 8
STEPS_PER_EPOCH = SAMPLES // BATCH
HPARAMS = {"lr": 0.05, "features": 3, "crash_at": None, "interrupt_at": None}  # Regression()'s, saved


class Regression(pl.LightningModule):
    """y = sum(x) with one linear layer; at `crash_at` / `interrupt_at` = (epoch, batch), training_step raises."""

    def __init__(self, lr: float = 0.05, features: int = 3, crash_at: tuple[int, int] | None = None,
                 interrupt_at: tuple[int, int] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(features, 1)

    def training_step(self, batch, batch_idx):
        if self.hparams.crash_at == (self.current_epoch, batch_idx):
            raise RuntimeError(f"loss exploded at epoch {self.current_epoch}")
        if self.hparams.interrupt_at == (self.current_epoch, batch_idx):
            raise KeyboardInterrupt  # what Ctrl-C raises in the training loop
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)  # -> train_loss_step, train_loss_epoch
        self.log("train/abs_error", (self.net(x) - y).abs().mean())  # a training step value under its own name
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))  # an epoch value

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Verbatim(Logger):
    """What Lightning hands its loggers, call by call: the reference the events are checked against."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[dict[str, float], int | None]] = []
        self.hyperparams: list[dict[str, Any]] = []

    name, version = "verbatim", "0"

    @property
    def experiment(self) -> None:
        return None

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))

    def log_hyperparams(self, params, *args, **kwargs):
        self.hyperparams.append(dict(params))


def loaders() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 3, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    val = TensorDataset(x[:16], y[:16])
    return DataLoader(TensorDataset(x, y), batch_size=BATCH), DataLoader(val, batch_size=BATCH)


def fit(model: pl.LightningModule, loggers: list[Logger], tmp_path, epochs: int = EPOCHS,
        lr_monitor: bool = True) -> pl.Trainer:
    torch.manual_seed(0)
    callbacks = [LearningRateMonitor(logging_interval="epoch")] if lr_monitor else []
    trainer = pl.Trainer(max_epochs=epochs, logger=loggers, log_every_n_steps=1, accelerator="cpu", devices=1,
                         callbacks=callbacks, default_root_dir=tmp_path,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    train, val = loaders()
    trainer.fit(model, train, val)
    return trainer


def expected(calls: list[tuple[dict[str, float], int | None]]) -> tuple[dict, dict]:
    """(steps, epochs) as the documented rule makes them from Lightning's calls: this module's step values
    are named *_step or train/abs_error; its epoch values *_epoch, val_loss, and lr-SGD once per epoch."""
    names = {"train_loss_step": "train/loss", "train/abs_error": "train/abs_error",
             "train_loss_epoch": "train/loss", "val_loss": "val/loss", "lr-SGD": "learning_rate"}
    steps: dict[int, dict[str, float]] = {}
    epochs: dict[int, dict[str, float]] = {}
    lr_epoch = 0
    for metrics, step in calls:
        values = {names[k]: v for k, v in metrics.items() if k != "epoch"}
        if "train_loss_step" in metrics:
            steps.setdefault(step, {}).update(values)
        elif "lr-SGD" in metrics:  # logged at each epoch's start, with no `epoch` key
            epochs.setdefault(lr_epoch, {}).update(values)
            lr_epoch += 1
        else:
            epochs.setdefault(int(metrics["epoch"]), {}).update(values)
    return steps, epochs


def test_fit_records_every_value_the_trainer_logged_per_step_and_per_epoch(recorder, tmp_path):
    logger = EpochstreamLogger(project="lightning-test", name="regression", config={"data": "synthetic"},
                               tags=["ci"], publisher=recorder)
    reference = Verbatim()
    trainer = fit(Regression(), [logger, reference], tmp_path)

    assert trainer.current_epoch == EPOCHS
    assert isinstance(logger.experiment, Run) and logger.version == logger.experiment.run_id
    started = recorder.started
    assert (started.project, started.name, started.tags) == ("lightning-test", "regression", ["ci"])
    assert started.config == {"data": "synthetic"}  # Lightning read `experiment` before log_hyperparams
    assert [c.config for c in recorder.of_type("run_config")] == reference.hyperparams == [HPARAMS]

    steps, epochs = expected(reference.calls)
    assert len(steps) == EPOCHS * STEPS_PER_EPOCH and len(epochs) == EPOCHS  # the reference saw them all
    assert {s.step: s.metrics for s in recorder.steps} == steps  # same values, bit for bit
    assert [s.step for s in recorder.steps] == sorted(steps)  # one event per step
    assert {s.step: s.epoch for s in recorder.steps} == {s: s // STEPS_PER_EPOCH for s in steps}
    assert [e.epoch for e in recorder.epochs] == list(range(EPOCHS))  # one event per epoch
    assert {e.epoch: e.metrics for e in recorder.epochs} == epochs
    assert all(set(m) == {"train/loss", "val/loss", "learning_rate"} for m in epochs.values())
    # live, not at the end: each epoch goes out as the next one starts, after its own last step
    order = [e.type for e in recorder.events if e.type in ("step", "epoch")]
    assert order == (["step"] * STEPS_PER_EPOCH + ["epoch"]) * EPOCHS

    finished = recorder.finished
    assert (finished.status, finished.error, finished.traceback) == ("completed", None, None)
    assert recorder.events[-1] is finished


def test_a_training_step_that_raises_is_recorded_failed_with_the_whole_traceback(recorder, tmp_path):
    logger = EpochstreamLogger(project="lightning-test", publisher=recorder)
    with pytest.raises(RuntimeError, match="loss exploded at epoch 2"):
        fit(Regression(crash_at=(2, 1)), [logger], tmp_path)

    finished = recorder.finished
    assert finished.status == "failed" and finished.exit_code == 1
    assert finished.error == "RuntimeError: loss exploded at epoch 2"
    trace = finished.traceback
    assert trace.startswith("Traceback (most recent call last):")
    assert "in training_step" in trace and 'raise RuntimeError(f"loss exploded' in trace
    assert "test_lightning.py" in trace and trace.rstrip().endswith("RuntimeError: loss exploded at epoch 2")
    epochs = {e.epoch: set(e.metrics) for e in recorder.epochs}  # all sent before run_finished
    assert epochs == {0: {"train/loss", "val/loss", "learning_rate"}, 1: {"train/loss", "val/loss", "learning_rate"},
                      2: {"learning_rate"}}  # epoch 2 only got as far as its learning rate
    assert [s.step for s in recorder.steps] == list(range(2 * STEPS_PER_EPOCH + 1))  # up to the crash
    assert recorder.events[-1] is finished


def test_ctrl_c_is_recorded_interrupted(recorder, tmp_path):
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while it shuts down, then exits 1
    try:
        with pytest.raises(SystemExit):
            fit(Regression(interrupt_at=(1, 0)), [EpochstreamLogger(publisher=recorder)], tmp_path)
    finally:
        signal.signal(signal.SIGINT, sigint)
    finished = recorder.finished
    assert (finished.status, finished.error, finished.exit_code) == ("interrupted", "KeyboardInterrupt", 130)
    assert "raise KeyboardInterrupt" in finished.traceback
    assert recorder.started.project == "lightning" and [e.epoch for e in recorder.epochs] == [0, 1]


def test_a_run_passed_in_is_recorded_into_and_left_open_for_its_owner(recorder, tmp_path):
    with start_run("mine", publisher=recorder) as run:
        logger = EpochstreamLogger(run=run)
        model = Regression()
        trainer = fit(model, [logger], tmp_path, epochs=2, lr_monitor=False)
        assert logger.version == run.run_id and logger.experiment is run
        assert recorder.finished is None  # the `with` block finishes it, not the logger
        assert [e.epoch for e in recorder.epochs] == [0, 1]  # the last one flushed at finalize all the same
        # without an epoch-start value, epoch 0 goes out when epoch 1 logs its first step
        order = [e.type for e in recorder.events if e.type in ("step", "epoch")]
        assert order == (["step"] * STEPS_PER_EPOCH + ["epoch"]) * 2
        trained = recorder.epochs[-1]

        [result] = trainer.test(model, loaders()[1], verbose=False)  # into the same, still open run
        assert recorder.finished is None
        retested = recorder.epochs[-1]  # the last trained epoch, sent again with the test value
        assert (retested.epoch, retested.metrics) == (1, {**trained.metrics, "test/loss": result["test_loss"]})
        assert recorder.of_type("run_config")[0].config == HPARAMS
    assert recorder.finished.status == "completed"


def test_a_validate_before_fit_leaves_the_run_open_for_the_fit(recorder, tmp_path):
    logger = EpochstreamLogger(publisher=recorder)
    model = Regression()
    trainer = pl.Trainer(logger=logger, accelerator="cpu", devices=1, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False)
    [before] = trainer.validate(model, loaders()[1], verbose=False)
    assert recorder.finished is None
    fit(model, [logger], tmp_path, epochs=1)
    assert [(e.epoch, set(e.metrics)) for e in recorder.epochs] == [
        (0, {"val/loss"}), (0, {"val/loss", "train/loss", "learning_rate"})]  # epoch 0 sent again, whole
    assert recorder.epochs[0].metrics["val/loss"] == before["val_loss"]
    assert recorder.finished.status == "completed"


class PerBatchValidation(Regression):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_abs", (self.net(x) - y).abs().mean(), on_step=True, on_epoch=False)


def test_per_step_validation_values_join_the_training_step_before_them(recorder, tmp_path):
    fit(PerBatchValidation(), [EpochstreamLogger(publisher=recorder)], tmp_path, epochs=2, lr_monitor=False)
    steps = {s.step: (s.epoch, set(s.metrics)) for s in recorder.steps}
    assert len(recorder.steps) == len(steps) == 2 * STEPS_PER_EPOCH  # no step overwritten, none added
    last = {STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH - 1}  # each epoch's last step, then its validation
    train = {"train/loss", "train/abs_error"}
    assert steps == {s: (s // STEPS_PER_EPOCH, train | {"val/abs"} if s in last else train)
                     for s in range(2 * STEPS_PER_EPOCH)}


def test_lightning_suffixes_come_off_unless_they_would_collide():
    assert strip_suffix({"loss_step": 1, "acc": 2}, "_step") == {"loss": 1, "acc": 2}
    assert strip_suffix({"loss_step": 1, "loss": 2}, "_step") == {"loss_step": 1, "loss": 2}
    assert strip_suffix({"_step": 1}, "_step") == {"_step": 1}


def test_the_readme_lines_publish_a_fit_through_redis(settings, redis_client, monkeypatch, tmp_path):
    import lightning

    monkeypatch.chdir(tmp_path)  # the Trainer's checkpoints go to the working directory
    train_loader, val_loader = loaders()
    torch.manual_seed(0)
    scope = run_readme_example("lightning", settings, monkeypatch, {
        "lightning": lightning, "model": Regression(), "train_loader": train_loader, "val_loader": val_loader})
    events = run_events(redis_client, settings, scope["trainer"].logger.version)
    assert events[0].type == "run_started" and (events[0].project, events[0].tags) == ("mnist", ["baseline"])
    assert [e.config for e in events if e.type == "run_config"] == [HPARAMS]
    assert [(e.epoch, set(e.metrics)) for e in events if e.type == "epoch"] == [
        (epoch, {"train/loss", "val/loss"}) for epoch in range(EPOCHS)]
    assert events[-1].type == "run_finished" and events[-1].status == "completed"


def test_through_the_pipeline_the_api_serves_exactly_what_lightning_logged(settings, redis_client, api_server,
                                                                           tmp_path):
    publisher = Publisher(settings)
    try:
        logger = EpochstreamLogger(project="lightning-e2e", config={"data": "synthetic"}, publisher=publisher)
        reference = Verbatim()
        fit(Regression(), [logger, reference], tmp_path)
        crashed = EpochstreamLogger(project="lightning-e2e", publisher=publisher)
        with pytest.raises(RuntimeError, match="loss exploded") as raised:
            fit(Regression(crash_at=(2, 1)), [crashed], tmp_path)
        assert publisher.flush(10)
    finally:
        publisher.close()
    drained(redis_client, settings)

    run, epochs, steps = served(api_server.base_url, logger.version)
    expected_steps, expected_epochs = expected(reference.calls)
    assert epochs == expected_epochs
    assert steps == {step: (step // STEPS_PER_EPOCH, metrics) for step, metrics in expected_steps.items()}
    assert run["config"] == {"data": "synthetic", **HPARAMS}  # run_started's, merged with log_hyperparams'
    assert (run["status"], run["epochs"], run["steps"]) == ("completed", EPOCHS, EPOCHS * STEPS_PER_EPOCH)

    failed, failed_epochs, failed_steps = served(api_server.base_url, crashed.version)
    assert (failed["status"], failed["exit_code"]) == ("failed", 1)
    assert failed["error"] == "RuntimeError: loss exploded at epoch 2"
    whole = "".join(traceback.format_exception(raised.value))  # as it reached this test, a few frames more
    assert failed["traceback"].startswith("Traceback (most recent call last):\n")
    assert whole.endswith(failed["traceback"].removeprefix("Traceback (most recent call last):\n"))
    assert "in training_step" in failed["traceback"]
    assert sorted(failed_epochs) == [0, 1, 2] and sorted(failed_steps) == list(range(2 * STEPS_PER_EPOCH + 1))
