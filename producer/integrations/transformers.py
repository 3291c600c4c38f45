"""Hugging Face transformers: `Trainer(..., callbacks=[EpochstreamCallback(project="bert-sweep")])`.

- `on_train_begin` starts the run; its config is `args.to_dict()` plus the model's config under
  `model_config` (what you pass as `config=` wins). With `run=` (a run already started) the same values
  arrive as a `run_config` event, merged into the run's config.
- `on_log` -> one `step` event per global step: `loss` -> `train/loss`, `grad_norm` -> `gradient_norm`,
  `learning_rate`, anything else by the rule in `producer.integrations.names`. The Trainer's closing
  summary (`train_runtime`, `total_flos`, the mean `train_loss`...) is not a step: it goes into the config,
  under `train_summary`. Evaluation values that `on_log` also sees are left to `on_evaluate`.
- `on_evaluate` -> the epoch's `epoch` event: `eval_loss` -> `val/loss`, `eval_X` -> `val/X`. Epochs are
  numbered from 0 (the Trainer's fractional `state.epoch` 1.0 is the end of epoch 0); with
  `eval_strategy="steps"`, each epoch's event holds its last evaluation.
- `on_train_end` finishes the run (`completed`) if the callback started it.
- `early_stop=True`: after each evaluation, `run.should_stop()` (the run's `monitor`, `mode`, `patience`,
  `min_delta`; default `val/loss`, lower is better) sets `control.should_training_stop`.

A Trainer callback hears nothing when training raises: to record a crash with its traceback, run the
training inside `with start_run(...) as run:` and pass `run=run`. Only the main process records.
"""

from __future__ import annotations

import math
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(f"producer.integrations.transformers needs transformers ({exc}): "
                      "pip install 'epochstream[transformers]'") from exc

from epochstream.settings import Settings
from producer.integrations.names import map_metrics, number
from producer.integrations.pending import Pending
from producer.integrations.runs import RunHandle, as_config, notices, quiet
from producer.run import Run

SUMMARY_KEYS = frozenset({"train_runtime", "total_flos"})  # the Trainer's closing log has these
EVALUATION_PREFIXES = ("eval_", "test_")


def epoch_index(epoch: Any) -> int | None:
    """The 0-based epoch of a Trainer's fractional epoch: (0, 1] is epoch 0, (1, 2] epoch 1."""
    value = number(epoch)
    if value is None or not math.isfinite(value):
        return None
    return max(math.ceil(value) - 1, 0)


class EpochstreamCallback(TrainerCallback):
    """A `TrainerCallback` that publishes to epochstream. Pass `run=` or `start_run`'s arguments.

    Without `project`, runs go to project "huggingface"; without `name`, the run is named `args.run_name`.
    """

    def __init__(self, project: str | None = None, name: str | None = None, config: Any = None,
                 tags: list[str] | None = None, *, run: Run | None = None, run_id: str | None = None,
                 settings: Settings | None = None, publisher: Any = None, monitor: str | None = None,
                 mode: str | None = None, patience: int | None = None, min_delta: float | None = None,
                 early_stop: bool = False, finish_run: bool | None = None):
        self._handle = RunHandle("huggingface", run, project=project, name=name, config=config, tags=tags,
                                 run_id=run_id, settings=settings, publisher=publisher, monitor=monitor,
                                 mode=mode, patience=patience, min_delta=min_delta, finish_run=finish_run)
        self.early_stop = early_stop
        self._steps = Pending(self._emit_step)
        self._epochs = Pending(self._emit_epoch)

    @property
    def run(self) -> Run:
        """The run this callback records (started now if training has not begun)."""
        return self._handle.run

    @quiet
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._handle.name_if_unset(getattr(args, "run_name", None))
        config = dict(args.to_dict())
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model_config"] = model_config.to_dict()
        self._handle.add_config(config)
        _ = self._handle.run  # started now, with that config

    @quiet
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._steps.flush()  # everything the previous step logged has arrived

    @quiet
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if SUMMARY_KEYS & logs.keys():
            self._handle.add_config({"train_summary": as_config(logs)})
            return
        values = {k: v for k, v in logs.items() if k != "epoch" and not k.startswith(EVALUATION_PREFIXES)}
        mapped, not_numbers = map_metrics(values)
        if mapped:
            self._steps.add(int(state.global_step), mapped, epoch_index(logs.get("epoch", state.epoch)))
        if not_numbers:
            notices.warn(f"hf-not-numbers-{sorted(not_numbers)}",
                         f"the Trainer logged values that are not numbers, not recorded: {sorted(not_numbers)}")

    @quiet
    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        mapped, _ = map_metrics(metrics, skip=("epoch",))
        if not mapped:
            return
        self._steps.flush()
        epoch = epoch_index(state.epoch)
        self._epochs.add(epoch if epoch is not None else 0, mapped)
        self._epochs.flush()  # now, so that the verdict below sees it
        if self.early_stop and self._handle.run.should_stop():
            control.should_training_stop = True

    @quiet
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._steps.flush()
        self._epochs.flush()
        self._handle.finish("completed")

    # -- publishing ------------------------------------------------------------------------------------
    def _emit_step(self, step: int, metrics: dict[str, float], epoch: int | None) -> None:
        self._handle.run.log_step(step, metrics, epoch=epoch)

    def _emit_epoch(self, epoch: int, metrics: dict[str, float], _extra: int | None) -> None:
        self._handle.run.log_epoch(epoch, metrics)
