"""PyTorch Lightning: `Trainer(logger=EpochstreamLogger(project="mnist"))`.

What the Trainer logs becomes our events:
- values it logs per step (`self.log(..., on_step=True)`, `LearningRateMonitor` every N steps) -> one
  `step` event per global step, with the epoch it belongs to;
- values it logs at an epoch's end (`on_epoch=True`: the training and the validation epoch ends, which it
  reports in separate calls and to which it adds `epoch`) -> one `epoch` event per epoch, holding all of
  them; it is sent when the next epoch logs its first value, or at `finalize`;
- `log_hyperparams` -> the run's config (a `run_config` event: Lightning reads `experiment`, which starts
  the run, before it calls `log_hyperparams`);
- `finalize("success")` at the end of `fit` -> `completed`; `finalize("failed")` -> `failed` with the
  exception's text and whole traceback (Lightning calls it while handling the exception), or
  `interrupted` for Ctrl-C.
Names follow `producer.integrations.names` (`val_loss` -> `val/loss`, `lr-Adam` -> `learning_rate`), after
Lightning's own `_step` / `_epoch` suffixes (`on_step=True, on_epoch=True`) are taken off.

Which calls are per step and which per epoch is Lightning's own test (`_LoggerConnector.metrics`: a loop
iteration in progress or not), read from the Trainer the logger receives in `log_graph`; without one (the
logger used outside a Trainer) every call is recorded as a step. Only rank 0 records. One logger records
one run, which it finishes when `fit` ends (after a `validate()` or `test()` alone it stays open, for a
later `fit` or for the process's exit, which records it `completed`): to record `fit` and then
`trainer.test()` in one run, pass `run=` a run you finish yourself; the test values then join the last
trained epoch's event.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import Any

try:
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as exc:
    raise ImportError(f"producer.integrations.lightning needs Lightning ({exc}): "
                      "pip install 'epochstream[lightning]'") from exc

from epochstream.settings import Settings
from producer.integrations.names import map_metrics, number
from producer.integrations.pending import Pending
from producer.integrations.runs import RunHandle, notices, quiet
from producer.run import Run

_UNKNOWN = object()


def strip_suffix(metrics: dict[str, Any], suffix: str) -> dict[str, Any]:
    """Lightning's `name_step` / `name_epoch` back to `name`, unless that would collide in this dict."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        bare = name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name
        out[name if bare != name and bare in metrics else bare] = value
    return out


class EpochstreamLogger(Logger):
    """A Lightning logger that publishes to epochstream. Pass `run=` or `start_run`'s arguments.

    Without `project`, runs go to project "lightning". The run starts when Lightning first reads
    `experiment` (its `run_id` is `version` from the start).
    """

    def __init__(self, project: str | None = None, name: str | None = None, config: Any = None,
                 tags: list[str] | None = None, *, run: Run | None = None, run_id: str | None = None,
                 settings: Settings | None = None, publisher: Any = None, monitor: str | None = None,
                 mode: str | None = None, patience: int | None = None, min_delta: float | None = None,
                 finish_run: bool | None = None):
        super().__init__()
        self._handle = RunHandle("lightning", run, project=project, name=name, config=config, tags=tags,
                                 run_id=run_id, settings=settings, publisher=publisher, monitor=monitor,
                                 mode=mode, patience=patience, min_delta=min_delta, finish_run=finish_run)
        self._steps = Pending(self._emit_step)
        self._epochs = Pending(self._emit_epoch)
        self._trainer: Any = None

    # -- what Lightning asks of a logger -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._handle.name or self._handle.project

    @property
    def version(self) -> str:
        return self._handle.run_id

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The `Run` (started on first access): `self.logger.experiment.log_epoch(...)` works too."""
        return self._handle.run

    @rank_zero_only
    @quiet
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self._handle.add_config(params)

    @rank_zero_only
    @quiet
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        # Lightning calls this once at the start of every fit/validate/test: the moment to meet the Trainer.
        try:
            self._trainer = model.trainer
        except RuntimeError:  # a module not attached to a Trainer: every call is a step
            self._trainer = None

    @rank_zero_only
    @quiet
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = dict(metrics)
        logged_epoch = number(values.pop("epoch", None))
        epoch = int(logged_epoch) if logged_epoch is not None else self._current_epoch()
        level = self._level()
        if level == "skip":
            return
        if epoch is not None and self._epochs.key is not None and epoch > self._epochs.key:
            self._steps.flush()  # the old epoch's last step goes out before the epoch that holds it
            self._epochs.flush()
        if level == "epoch":
            if not self._fitting() and epoch is not None:
                # `trainer.test()` / `validate()` report the model as the last trained epoch left it: that
                # epoch's event is sent again, holding its training values and these
                epoch = max(epoch - 1, 0)
            mapped, not_numbers = map_metrics(strip_suffix(values, "_epoch"))
            if mapped:
                self._epochs.add(epoch if epoch is not None else 0, mapped)
        else:
            mapped, not_numbers = map_metrics(strip_suffix(values, "_step"))
            at = step
            if level == "eval-step":  # Lightning numbers these by evaluation batch, which would overwrite steps
                done = self._global_step()  # optimizer steps so far: the last one's key is done - 1
                at = max(done - 1, 0) if done is not None else None
                notices.warn("lightning-eval-step", "per-step values of a validation or test loop are recorded "
                                                    "with the training step before it; the loop's last batch wins")
            if at is None:
                at = self._steps.key if self._steps.key is not None else 0
            if mapped:
                self._steps.add(int(at), mapped, epoch)
        if not_numbers:
            notices.warn(f"lightning-not-numbers-{sorted(not_numbers)}",
                          f"Lightning logged values that are not numbers, not recorded: {sorted(not_numbers)}")

    @rank_zero_only
    @quiet
    def finalize(self, status: str) -> None:
        self._steps.flush()
        self._epochs.flush()
        if status == "success":
            if self._fitting():  # a `validate()` or `test()` before `fit` must not close the run on it
                self._handle.finish("completed")
        elif status == "failed":
            exc_info = sys.exc_info()  # Lightning finalizes inside its `except BaseException` block
            if exc_info[1] is not None:
                self._handle.finish_with(exc_info)
            else:
                self._handle.finish("failed", "Lightning reported that the training failed (no exception was "
                                              "being handled when it finalized the logger)", exit_code=1)
        else:  # "finished": a SLURM requeue signal; anything else Lightning may add
            self._handle.finish("interrupted", f"Lightning finalized the logger with status {status!r}")

    def save(self) -> None:
        """Nothing to do: each event is handed to the background publisher as soon as it is complete."""

    # -- reading the Trainer ---------------------------------------------------------------------------
    def _level(self) -> str:
        """'step', 'eval-step' (a step value of a validation/test loop), 'epoch', or 'skip' (sanity check)."""
        trainer = self._trainer
        if trainer is None:
            return "step"
        if getattr(trainer, "sanity_checking", False):
            return "skip"
        connector = getattr(trainer, "_logger_connector", None)
        first_loop_iter = getattr(connector, "_first_loop_iter", _UNKNOWN)
        if first_loop_iter is _UNKNOWN:  # a Lightning that no longer has it: record everything as steps
            notices.warn("lightning-level", "this Lightning version does not tell step from epoch values; "
                                             "every value is recorded as a step")
            return "step"
        if first_loop_iter is None:
            return "epoch"
        return "step" if getattr(trainer, "training", True) else "eval-step"

    def _fitting(self) -> bool:
        fn = getattr(getattr(self._trainer, "state", None), "fn", None)
        return fn is None or fn == "fit"

    def _current_epoch(self) -> int | None:
        epoch = getattr(self._trainer, "current_epoch", None)
        return epoch if isinstance(epoch, int) else None

    def _global_step(self) -> int | None:
        step = getattr(self._trainer, "global_step", None)
        return step if isinstance(step, int) else None

    # -- publishing ------------------------------------------------------------------------------------
    def _emit_step(self, step: int, metrics: dict[str, float], epoch: int | None) -> None:
        self._handle.run.log_step(step, metrics, epoch=epoch)

    def _emit_epoch(self, epoch: int, metrics: dict[str, float], _extra: int | None) -> None:
        self._handle.run.log_epoch(epoch, metrics)
