"""Keras 3: `model.fit(..., callbacks=[EpochstreamCallback(project="mnist")])`, on any backend.

- `on_train_begin` starts the run; its config holds `epochs` and `steps` (per epoch) as `fit` was called,
  and the optimizer's config under `optimizer` (what you pass as `config=` wins).
- `on_epoch_end(epoch, logs)` -> one `epoch` event: Keras' unprefixed metrics are the training ones
  (`loss` -> `train/loss`, `accuracy` -> `train/accuracy`, `mae` -> `train/mae`), `val_X` -> `val/X`,
  `learning_rate` stays; see `producer.integrations.names`.
- `early_stop=True`: after each epoch, `run.should_stop()` (the run's `monitor`, `mode`, `patience`,
  `min_delta`; default `val/loss`, lower is better) sets `model.stop_training`.
- `on_train_end` finishes the run (`completed`) if the callback started it.

Keras calls no callback when `fit` raises: to record a crash with its traceback, call `fit` inside
`with start_run(...) as run:` and pass `run=run`. Keras reads `KERAS_BACKEND` when it is first imported
(here: `torch`), so set it before anything imports keras.
"""

from __future__ import annotations

from typing import Any

try:
    import keras
except ImportError as exc:
    raise ImportError(f"producer.integrations.keras needs Keras 3 ({exc}): pip install 'epochstream[keras]'") from exc

from epochstream.settings import Settings
from producer.integrations.names import map_metrics
from producer.integrations.runs import RunHandle, notices, quiet
from producer.run import Run


class EpochstreamCallback(keras.callbacks.Callback):
    """A Keras callback that publishes to epochstream. Pass `run=` or `start_run`'s arguments.

    Without `project`, runs go to project "keras".
    """

    def __init__(self, project: str | None = None, name: str | None = None, config: Any = None,
                 tags: list[str] | None = None, *, run: Run | None = None, run_id: str | None = None,
                 settings: Settings | None = None, publisher: Any = None, monitor: str | None = None,
                 mode: str | None = None, patience: int | None = None, min_delta: float | None = None,
                 early_stop: bool = False, finish_run: bool | None = None):
        super().__init__()
        self._handle = RunHandle("keras", run, project=project, name=name, config=config, tags=tags,
                                 run_id=run_id, settings=settings, publisher=publisher, monitor=monitor,
                                 mode=mode, patience=patience, min_delta=min_delta, finish_run=finish_run)
        self.early_stop = early_stop

    @property
    def run(self) -> Run:
        """The run this callback records (started now if training has not begun)."""
        return self._handle.run

    @quiet
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        params = dict(getattr(self, "params", None) or {})
        config: dict[str, Any] = {key: params[key] for key in ("epochs", "steps") if key in params}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "get_config"):
            config["optimizer"] = optimizer.get_config()
        self._handle.add_config(config)
        _ = self._handle.run  # started now, with that config

    @quiet
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        mapped, not_numbers = map_metrics(logs or {}, bare="train")
        if mapped:
            self._handle.run.log_epoch(int(epoch), mapped)
        if not_numbers:
            notices.warn(f"keras-not-numbers-{sorted(not_numbers)}",
                         f"Keras logged values that are not numbers, not recorded: {sorted(not_numbers)}")
        if self.early_stop and self._handle.run.should_stop():
            self.model.stop_training = True

    @quiet
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._handle.finish("completed")
