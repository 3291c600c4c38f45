"""A real Keras 3 `fit` on the torch backend (set by this folder's conftest before keras is imported)
with `EpochstreamCallback`: every epoch's values arrive under our names; early stopping stops `fit`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from producer import Publisher
from producer.integrations.keras import EpochstreamCallback
from producer.jsonsafe import json_safe
from tests.producer.conftest import stream_entries
from tests.producer.integrations.pipeline import drained, served
from tests.producer.integrations.readme import run_readme_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-on-torch numpy calls

EPOCHS = 5


def fit(callback: EpochstreamCallback, epochs: int = EPOCHS) -> tuple[keras.Model, keras.callbacks.History]:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    history = model.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=epochs, batch_size=16, verbose=0,
                        callbacks=[callback])
    return model, history


def test_keras_runs_on_the_torch_backend_here():
    assert keras.backend.backend() == "torch"


def test_fit_records_each_epoch_as_keras_logged_it(recorder):
    callback = EpochstreamCallback(project="keras-test", config={"data": "synthetic"}, publisher=recorder)
    model, history = fit(callback)

    started = recorder.started
    assert started.project == "keras-test" and started.run_id == callback.run.run_id
    assert started.config["epochs"] == EPOCHS and started.config["steps"] == 3 and started.config["data"] == "synthetic"
    assert started.config["optimizer"]["name"] == "sgd"
    assert started.config["optimizer"]["learning_rate"] == float(np.float32(0.05))

    names = {"loss": "train/loss", "mae": "train/mae", "val_loss": "val/loss", "val_mae": "val/mae"}
    assert set(history.history) == set(names)
    assert [e.epoch for e in recorder.epochs] == list(range(EPOCHS))
    assert [e.metrics for e in recorder.epochs] == [
        {ours: history.history[theirs][epoch] for theirs, ours in names.items()} for epoch in range(EPOCHS)]
    assert not model.stop_training
    assert recorder.finished.status == "completed" and recorder.events[-1] is recorder.finished


def test_the_runs_verdict_stops_fit(recorder):
    # patience 1 and a min_delta no loss can beat: no improvement after epoch 0, stop after epoch 1 of 5.
    callback = EpochstreamCallback(project="keras-test", publisher=recorder, early_stop=True, patience=1,
                                   min_delta=1e9)
    model, history = fit(callback)
    assert model.stop_training and history.epoch == [0, 1]
    assert [e.epoch for e in recorder.epochs] == [0, 1]
    assert recorder.finished.status == "completed"


def test_without_early_stop_the_verdict_is_not_acted_on(recorder):
    model, history = fit(EpochstreamCallback(publisher=recorder, patience=1, min_delta=1e9), epochs=3)
    assert history.epoch == [0, 1, 2] and not model.stop_training
    assert recorder.started.project == "keras"


def test_the_readme_lines_publish_a_fit_through_redis(settings, redis_client, monkeypatch):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    run_readme_example("keras", settings, monkeypatch, {"model": model, "x": x, "y": x.sum(axis=1)})
    events = [event for _, event in stream_entries(redis_client, settings)]  # this test's namespace: one run
    assert len({e.run_id for e in events}) == 1
    assert events[0].type == "run_started" and events[0].project == "keras-mlp"
    assert [(e.epoch, set(e.metrics)) for e in events if e.type == "epoch"] == [
        (epoch, {"train/loss", "val/loss"}) for epoch in range(5)]
    assert events[-1].type == "run_finished" and events[-1].status == "completed"


def test_through_the_pipeline_the_api_serves_exactly_what_keras_logged(settings, redis_client, api_server):
    publisher = Publisher(settings)
    try:
        callback = EpochstreamCallback(project="keras-e2e", config={"data": "synthetic"}, publisher=publisher)
        model, history = fit(callback)
        assert publisher.flush(10)
    finally:
        publisher.close()
    drained(redis_client, settings)

    run, epochs, steps = served(api_server.base_url, callback.run.run_id)
    names = {"loss": "train/loss", "mae": "train/mae", "val_loss": "val/loss", "val_mae": "val/mae"}
    assert epochs == {epoch: {ours: history.history[theirs][epoch] for theirs, ours in names.items()}
                      for epoch in range(EPOCHS)}
    assert steps == {}
    assert run["config"] == {"epochs": EPOCHS, "steps": 3, "optimizer": json_safe(model.optimizer.get_config()),
                             "data": "synthetic"}
    assert run["status"] == "completed"
