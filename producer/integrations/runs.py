"""The run an integration logs to: one the user passed in, or one it starts itself on first use.

Every integration takes either `run=` (a `Run` the caller started, e.g. `with start_run(...) as run:`) or
`start_run`'s arguments. Who started the run finishes it: an integration finishes only a run it started
(`finish_run=` overrides), so `with start_run(...) as run: trainer.fit(...)` keeps recording a crash with
its traceback through the `with` block, and a run passed to several trainings stays open between them.

Nothing here raises into training code once training runs: the hooks are wrapped by `quiet`, which logs
a problem once and carries on (DESIGN.md, invariant 1). A wrong combination of constructor arguments is
a programming error and raises `TypeError` at once, before any training starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from epochstream.settings import Settings
from producer.jsonsafe import as_config
from producer.notices import Notices
from producer.run import Run, new_run_id, outcome, start_run
from schemas.run_finished import RunStatus

F = TypeVar("F", bound=Callable[..., Any])
notices = Notices()


def quiet(method: F) -> F:
    """A framework hook that never raises: a failure is logged once per hook and the hook returns None."""

    @functools.wraps(method)
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a logging hook must never stop a training
            notices.warn(f"{type(self).__name__}.{method.__name__}",
                          f"{type(self).__name__}.{method.__name__} failed, training goes on: {exc!r}")
            return None

    return hook  # type: ignore[return-value]


class RunHandle:
    """A `Run` given, or the arguments to start one when it is first needed (`.run`)."""

    def __init__(self, framework: str, run: Run | None = None, *, project: str | None = None,
                 name: str | None = None, config: Any = None, tags: list[str] | None = None,
                 run_id: str | None = None, settings: Settings | None = None, publisher: Any = None,
                 monitor: str | None = None, mode: str | None = None, patience: int | None = None,
                 min_delta: float | None = None, finish_run: bool | None = None):
        start = dict(project=project, name=name, tags=tags, run_id=run_id, settings=settings, publisher=publisher,
                     monitor=monitor, mode=mode, patience=patience, min_delta=min_delta)
        if run is not None:
            given = [key for key, value in start.items() if value is not None]
            if given:
                raise TypeError(f"{framework}: pass either run= (a run already started) or start_run's arguments, "
                                f"not both (got run= and {', '.join(k + '=' for k in given)})")
            if not isinstance(run, Run):
                raise TypeError(f"{framework}: run= must be a producer.Run (from start_run), not {type(run).__name__}")
        self.framework = framework
        self._run = run
        self._start = start
        self._start["project"] = project if project is not None else framework
        self._user_config = as_config(config)
        self._framework_config: dict[str, Any] = {}
        self.owned = run is None if finish_run is None else bool(finish_run)
        self.run_id = run.run_id if run is not None else (run_id or new_run_id())
        if run is not None and self._user_config:
            run.log_config(self._user_config)

    @property
    def started(self) -> bool:
        return self._run is not None

    @property
    def name(self) -> str | None:
        return self._start["name"]

    @property
    def project(self) -> str:
        return self._run.project if self._run is not None else self._start["project"]

    @property
    def run(self) -> Run:
        """The run, started now if it was not (never raises: `start_run` does not)."""
        if self._run is None:
            start = {**self._start, "run_id": self.run_id}
            project = start.pop("project")
            config = {**self._framework_config, **self._user_config}  # what the user said wins
            self._run = start_run(project, config=config, **start)
        return self._run

    def name_if_unset(self, name: str | None) -> None:
        """A name the framework knows (Hugging Face's `run_name`), used when none was given and not started."""
        if name and self._start["name"] is None and self._run is None:
            self._start["name"] = str(name)

    def add_config(self, config: Any) -> None:
        """Hyper-parameters the framework knows: in `run_started` if the run has not started, else a
        `run_config` event (merged into the run's config key by key)."""
        values = as_config(config)
        if not values:
            return
        if self._run is None:
            self._framework_config.update(values)
        else:
            self._run.log_config(values)

    def finish(self, status: RunStatus = "completed", error: str | None = None, traceback: str | None = None,
               exit_code: int | None = None) -> None:
        """Finish the run if this integration owns it, then give the publisher `exit_flush_s` to deliver."""
        if self._run is None or not self.owned:
            return
        self._run.finish(status, error, traceback, exit_code)
        self._run.flush(self._run.settings.exit_flush_s)

    def finish_with(self, exc_info: tuple) -> None:
        """Finish as `outcome` says for this exception (failed, or interrupted for a KeyboardInterrupt)."""
        self.finish(*outcome(*exc_info))
