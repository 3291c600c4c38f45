"""A training run: `start_run(...)` publishes `run_started`; leaving its `with` block publishes `run_finished`.

    with start_run(project="resnet-sweep", config={"lr": 3e-4}) as run:
        for epoch in range(epochs):
            ...
            run.log_epoch(epoch, {"train/loss": tl, "val/loss": vl}, samples=n)

How a run ends, whatever the code in the block does:
- the block finishes: `completed` (exit code 0);
- it raises: `failed`, with the whole exception text and the whole traceback (never truncated); the
  exception goes on to the caller;
- SIGTERM or SIGINT (Ctrl-C): `interrupted` (exit code 128 + signal); see `producer.lifecycle`;
- the process dies without a word (SIGKILL, power): the workers see the heartbeat stop (system events
  every `system_interval_s`) and call the run stale.

Every method returns at once and never raises into training code. A value that cannot be published is
dropped alone (never its whole epoch), counted in the run's `drops` (`producer.drops`), logged the first
time its kind occurs, summarised when the run finishes and published with the run.

`start_run(run_id=..., resume=True)` continues a run from a checkpoint as a later attempt; reusing an id
without it is refused (see `producer.attempts`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from epochstream.settings import Settings
from producer import lifecycle
from producer.attempts import Plan, plan_attempt, seq_floor
from producer.drafts import (
    MAX_STEP,
    Built,
    EpochDraft,
    RunIdentity,
    StepDraft,
    check_count,
    check_metrics,
    check_number,
)
from producer.drops import DropLedger
from producer.flags import SeriesWatch
from producer.jsonsafe import as_config
from producer.notices import Notices, log
from producer.outcome import outcome
from producer.publisher import Publisher
from producer.sink import KnowsSeqs, Sink
from producer.system_sampler import SystemSampler
from schemas.read_models import TrendFlags
from schemas.run_config import RunConfigV1
from schemas.run_finished import RunFinishedV2, RunStatus
from schemas.run_started import RunStartedV2
from schemas.system import GpuSample, SystemV2
from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import TrendState, fold, needs_refold, verdict


def new_run_id() -> str:
    return uuid.uuid4().hex


class Run:
    """One attempt of a training run. `run_id` and `seq` make every `event_id`; `seq_start` is the seq
    before this attempt's first event (0 for a first attempt; see `producer.attempts`)."""

    def __init__(self, publisher: Sink, run_id: str, project: str, settings: Settings | None = None, *,
                 seq_start: int = 0, resume: bool = False, unchecked_reuse: bool = False):
        self.publisher = publisher
        self.settings = settings if settings is not None else publisher.settings
        self.run_id = run_id
        self.project = project
        self.finished = False
        self.notices = Notices()
        self.drops = DropLedger(run_id, self.notices)  # what could not be published as given
        self.seq_start = seq_start
        self.resume = resume
        # What every queued event carries to the publisher thread instead of this object.
        self.identity = RunIdentity(run_id, seq_start, socket.gethostname(), os.getpid(), self.drops,
                                    SeriesWatch(), self.notices, unchecked_reuse)
        self._seq = seq_start
        self._lock = threading.RLock()  # re-entrant: a signal handler may finish the run mid-call
        self._started = time.monotonic()
        self._sampler: SystemSampler | None = None
        self._signal: int | None = None
        self.trend_config = TrendConfig()
        self._judged: TrendState | None = None  # what should_stop() has folded so far
        self._unjudged: list[EpochRow] = []  # epochs logged since: log_epoch only appends
        self._history: dict[int, EpochRow] = {}  # judged epochs, for a refold after a rewind

    @property
    def unchecked_reuse(self) -> bool:
        """Started without knowing whether its explicit id had events (the broker could not be asked)."""
        return self.identity.unchecked_reuse

    # -- publishing ------------------------------------------------------------------------------------
    def _queue_next(self, make: Callable[[int], Any], finishing: bool = False) -> bool:
        """The one place a seq is taken: `make(seq)` builds what goes out with the run's next seq, and it is
        queued. Seq and queue order are the same by holding the lock across both, so the sampler thread can
        never queue seq n+1 ahead of n. After `run_finished` nothing but it goes out (False, counted). A
        `make` that raises uses up no seq (the exception goes to the caller)."""
        with self._lock:
            if self.finished and not finishing:
                self._after_finish()
                return False
            seq = self._seq + 1
            item = make(seq)
            self._seq = seq
            self.publisher.publish(item)
            return True

    def _emit(self, model: type, **body: Any) -> bool:
        """Build the event (on this thread) with the next `seq` and queue it."""
        identity = self.identity

        def make(seq: int) -> Built:
            # ts as Unix seconds: pydantic makes the UTC datetime (on the publisher thread, for epochs).
            return Built(identity, model(event_id=f"{self.run_id}:{seq}", run_id=self.run_id, seq=seq,
                                         ts=time.time(), host=identity.host, pid=identity.pid, **body))
        try:
            return self._queue_next(make, finishing=model is RunFinishedV2)
        except Exception as exc:  # noqa: BLE001 - bad values from training code must not crash training
            self.drops.add("invalid_event", 1, model.__name__, f"a {model.__name__} event was not published: {exc}")
            return False

    def _after_finish(self) -> None:
        self.drops.add("after_finish", 1, quiet=True)
        self.notices.warn("after-finish", f"run {self.run_id}: events after run_finished are dropped")

    def log_epoch(self, epoch: int, metrics: dict[str, float], samples: int | None = None) -> None:
        """Publish one epoch's metrics (names as in DESIGN.md, or any custom float metric).

        Values may be floats, ints, NaN/±inf, NumPy scalars or 0-d tensors. An all-zero, constant or NaN
        series is flagged in the event's `warnings` and logged once. A value that is not a number (None, a
        string, a vector) is dropped alone and a name outside the contract's pattern is sanitised
        (`acc@1` -> `acc_1`); each is counted in `run.drops`. Only an epoch number that is not a whole
        number >= 0 drops the event (counted too); the next `seq` is not used up.
        """
        try:
            if type(epoch) is not int or epoch < 0:
                epoch = check_number(epoch, "epoch")
            clean = check_metrics(metrics, self.drops, "epoch", epoch)
            if samples is not None and (type(samples) is not int or samples < 0):
                samples = self._field(samples, "samples", f"epoch {epoch}")
            # The hot path builds no model and no keyword dicts (see producer.drafts).
            identity = self.identity
            with self._lock:
                if self._queue_next(lambda seq: EpochDraft(identity, seq, time.time(), epoch, clean, samples)):
                    self._unjudged.append(EpochRow(epoch, clean))
        except Exception as exc:  # noqa: BLE001 - bad values from training code must not crash training
            self._invalid("epoch", epoch, exc)

    def _field(self, value: Any, what: str, where: str) -> int | None:
        """A whole number >= 0, or None (the event goes without it; counted as `invalid_field`)."""
        try:
            return check_count(value, what)
        except Exception as exc:  # noqa: BLE001
            self.drops.add("invalid_field", 1, what, f"{where}: {exc}; sent without it")
            return None

    def _invalid(self, what: str, number: Any, exc: BaseException) -> None:
        self.drops.add("invalid_event", 1, (what, type(exc).__name__),
                       lambda: f"{what} {number!r} not published: {exc}")

    def log_step(self, step: int, metrics: dict[str, float], epoch: int | None = None) -> None:
        """Publish one training step's metrics (what frameworks log every N steps), as cheaply as an epoch.

        `step` is the global step number; a step logged again replaces the earlier values. `epoch`, when
        given, says which epoch the step belongs to. Values are checked as in `log_epoch`.
        """
        try:
            if type(step) is not int or step < 0 or step > MAX_STEP:
                step = check_number(step, "step", MAX_STEP)
            clean = check_metrics(metrics, self.drops, "step", step)
            if epoch is not None and (type(epoch) is not int or epoch < 0):
                epoch = self._field(epoch, "epoch", f"step {step}")
            identity = self.identity
            self._queue_next(lambda seq: StepDraft(identity, seq, time.time(), step, clean, epoch))
        except Exception as exc:  # noqa: BLE001 - bad values from training code must not crash training
            self._invalid("step", step, exc)

    def log_config(self, config: Any) -> None:
        """Add hyper-parameters learnt after the start (a framework's late `log_hyperparams`): merged into
        the run's config key by key, later calls winning."""
        self._emit(RunConfigV1, config=as_config(config))

    def should_stop(self) -> bool:
        """Would early stopping stop now? Judged here, from what this process logged, by the same functions
        the workers use (no network round trip): `if run.should_stop(): break`. Never raises."""
        return self.verdict().should_stop

    def verdict(self) -> TrendFlags:
        """The trend flags and recommendation of what this process logged so far (see `should_stop`)."""
        try:
            with self._lock:
                rows, self._unjudged = self._unjudged, []
                if rows:
                    first = min(r.epoch for r in rows)
                    refold = needs_refold(self._judged, first, self.trend_config)
                    for row in rows:  # an epoch logged twice: the later values count
                        self._history[row.epoch] = row
                    if refold:  # a rewind or an out-of-order epoch: judge everything again
                        self._judged = fold(None, [self._history[e] for e in sorted(self._history)],
                                            self.trend_config)
                    else:
                        self._judged = fold(self._judged, [self._history[e] for e in sorted({r.epoch for r in rows})],
                                            self.trend_config)
                state = self._judged or fold(None, [], self.trend_config)
            return verdict(state, self.trend_config, status="running")
        except Exception as exc:  # noqa: BLE001 - a judgement must never crash training
            self.notices.warn("verdict", f"run {self.run_id}: could not judge the curves: {exc!r}")
            return TrendFlags()

    def log_system(self, gpus: list[GpuSample] | None = None, cpu_percent: float | None = None,
                   rss_mb: float | None = None) -> None:
        """Publish one system sample. The background sampler calls this; training code may too. It carries
        the run's drop report when that changed since the last sample (the heartbeat shows drops live)."""
        version, report = self.drops.pending()
        if self._emit(SystemV2, gpus=gpus or [], cpu_percent=cpu_percent, rss_mb=rss_mb, drops=report) and report:
            self.drops.sent(version)

    def finish(self, status: RunStatus = "completed", error: str | None = None, traceback: str | None = None,
               exit_code: int | None = None) -> None:
        """Publish `run_finished` (once; later calls do nothing) and stop the system sampler."""
        if self.finished:
            return
        if self._sampler is not None:
            self._sampler.stop()
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._emit(RunFinishedV2, status=status, error=error, traceback=traceback, exit_code=exit_code,
                       duration_s=time.monotonic() - self._started, drops=self.drops.report())
        lifecycle.run_closed(self)
        summary = self.drops.summary()
        if summary:
            log.warning("epochstream: %s", summary)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait at most `timeout` s until this process's events are delivered; True if nothing is left."""
        return self.publisher.flush(timeout)

    # -- with ... as run -------------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, traceback_) -> bool:
        try:
            self.finish(*outcome(exc_type, exc, traceback_, self._signal))
            self.flush(self.settings.exit_flush_s)
        except Exception as error:  # noqa: BLE001
            self.notices.warn("exit", f"run {self.run_id}: could not finish cleanly: {error!r}")
        return False  # the exception, if any, goes on to the caller

    # -- called by producer.lifecycle ------------------------------------------------------------------
    def _interrupted_by(self, signum: int) -> None:
        self._signal = signum

    def _finish_at_exit(self, uncaught: tuple | None) -> None:
        if self.publisher.closed:
            return  # its publisher was closed by the program: nothing can go out, and it needs no saying
        if uncaught is not None:
            self.finish(*outcome(*uncaught, self._signal))
        else:
            status, error, trace, code = outcome(None, None, None, self._signal)
            self.finish(status, error, trace, code if self._signal is not None else None)


# -- starting a run --------------------------------------------------------------------------------------
_publishers: dict[str, Publisher] = {}
_publishers_lock = threading.Lock()


def default_publisher(settings: Settings | None = None) -> Publisher:
    """One publisher per distinct settings in this process, made on first use."""
    settings = settings if settings is not None else Settings()
    key = settings.model_dump_json()
    with _publishers_lock:
        publisher = _publishers.get(key)
        if publisher is None or publisher._closed:
            publisher = _publishers[key] = Publisher(settings)
        return publisher


class Discard:
    """The sink where events go when no publisher could be made (bad EPOCHSTREAM_* settings): training
    goes on."""

    closed = False

    def __init__(self, settings: Settings):
        self.settings = settings

    def publish(self, event: Any) -> None:
        pass

    def flush(self, timeout: float = 0.0) -> bool:
        return False

    def close(self, timeout: float | None = None) -> bool:
        return False


def _torch_versions() -> tuple[str | None, str | None]:
    torch = sys.modules.get("torch")  # only if training code already imported it: never slow our import
    if torch is None:
        return None, None
    version = getattr(torch, "version", None)
    return str(getattr(torch, "__version__", "")) or None, getattr(version, "cuda", None)


def start_run(project: str, name: str | None = None, config: dict[str, Any] | None = None,
              tags: list[str] | None = None, *, run_id: str | None = None, settings: Settings | None = None,
              publisher: Sink | None = None, monitor: str | None = None, mode: str | None = None,
              patience: int | None = None, min_delta: float | None = None, resume: bool = False) -> Run:
    """Begin a run and publish `run_started`. Use it as a context manager. Never raises.

    `config` may hold anything (NumPy scalars, tensors, Paths...): it is made JSON-safe. Without a
    `publisher`, one shared per `settings` (default: from the environment) is used. `monitor`, `mode`,
    `patience` and `min_delta` say what early stopping and the best epoch follow (None: the defaults in
    README.md, "Trend flags"); the workers and `run.should_stop()` judge by them.

    `resume=True` with the `run_id` of an existing run continues it as a later attempt (a job restarted
    from its checkpoint): its epochs and steps replace the earlier attempt's from the first one it logs.
    Without it, an explicit `run_id` that already has events is refused: the run gets a fresh id and a
    warning says which. Either asks the broker once, within `publish_timeout_s` (see `producer.attempts`).
    """
    try:
        if publisher is None:
            publisher = default_publisher(settings)
        settings = settings if settings is not None else publisher.settings
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed EPOCHSTREAM_* variable
        Notices().warn("settings", f"cannot publish ({exc}); this run is not recorded, training goes on")
        settings = settings if settings is not None else Settings.model_construct()
        publisher = Discard(settings)
    plan = _plan(publisher, run_id, bool(resume))
    run = Run(publisher, plan.run_id, str(project), settings, seq_start=plan.seq_start, resume=plan.resume,
              unchecked_reuse=plan.unchecked)
    if plan.warning:
        run.notices.warn("attempt", plan.warning)
    try:
        run.trend_config = TrendConfig(monitor=monitor, mode=mode, patience=patience,  # type: ignore[arg-type]
                                       min_delta=min_delta)
    except Exception as exc:  # noqa: BLE001
        run.notices.warn("monitor", f"run {run.run_id}: early-stopping settings ignored: {exc!r}")
    try:
        torch_version, cuda_version = _torch_versions()
        run._emit(RunStartedV2, project=str(project), name=None if name is None else str(name),
                  config=as_config(config), tags=[str(tag) for tag in tags or []],
                  python_version=platform.python_version(), torch_version=torch_version,
                  cuda_version=cuda_version, heartbeat_s=settings.system_interval_s,
                  monitor=run.trend_config.monitor, mode=run.trend_config.mode,
                  patience=run.trend_config.patience, min_delta=run.trend_config.min_delta, resume=run.resume)
    except Exception as exc:  # noqa: BLE001 - e.g. tags that are not a list
        run.notices.warn("started", f"run {run.run_id}: run_started not published: {exc!r}")
    try:
        lifecycle.run_opened(run, settings.install_signal_handlers)
        run._sampler = SystemSampler(run.log_system, settings.system_interval_s).start()
    except Exception as exc:  # noqa: BLE001
        run.notices.warn("start", f"run {run.run_id}: no signal handlers or system sampler: {exc!r}")
    return run


def _plan(publisher: Sink, run_id: str | None, resume: bool) -> Plan:
    """Ask the publisher what the broker knows of an explicit run id (never for a fresh uuid)."""
    if run_id is None:
        if resume:
            Notices().warn("resume-no-id", "start_run(resume=True) needs the run_id of the run to continue: "
                                           "starting a new run instead")
        return Plan(new_run_id(), 0, False)
    run_id = str(run_id)
    mark, known, why = None, False, "this publisher cannot ask the broker"
    if isinstance(publisher, KnowsSeqs):
        try:
            mark, known = publisher.seq_mark(run_id), True
        except Exception as exc:  # noqa: BLE001 - the broker is away: decide without it
            why = str(exc) or type(exc).__name__
    busy = False
    if known and not mark and not resume and isinstance(publisher, KnowsSeqs):
        with contextlib.suppress(Exception):
            busy = bool(publisher.spool_busy())
    return plan_attempt(run_id, explicit=True, resume=resume, mark=mark, known=known, floor=seq_floor(),
                        spool_busy=busy, why_unknown=why)
