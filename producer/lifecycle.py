"""The producer's process-wide hooks: exit, SIGTERM/SIGINT, uncaught exceptions, fork.

Installed the first time a publisher or a run needs them, never at import, and each chains to what was
there before:

- at exit: runs still open are finished (`failed` with the whole traceback if an uncaught exception is
  ending the process, `interrupted` after a signal, else `completed`), then every publisher delivers what
  it holds within `exit_flush_s`; the rest stays in the spool for the next process.
- SIGTERM / SIGINT (main thread only): open runs are marked interrupted. If the old handler is Python's
  (SIGINT's KeyboardInterrupt, a framework's), it is called and the `with` block finishes the run. If it
  was the default action, the runs are finished here, publishers flushed within the bound, and the signal
  is raised again with the default action, so the process still ends (status -SIGTERM). An ignored
  signal stays ignored.
- fork: the child starts with no open runs and fresh, empty publishers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from typing import Any, Protocol


class _Publisher(Protocol):
    settings: Any

    def close(self, timeout: float | None = None) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


class _Run(Protocol):
    def _interrupted_by(self, signum: int) -> None: ...

    def _finish_at_exit(self, uncaught: tuple | None) -> None: ...


_lock = threading.Lock()
_publishers: weakref.WeakSet = weakref.WeakSet()
_runs: set = set()  # runs that have started and not finished (strong references while open)
_process_hooks = False
_previous_handlers: dict[int, Any] = {}
_previous_excepthook = sys.__excepthook__
_uncaught: tuple | None = None
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def track_publisher(publisher: _Publisher) -> None:
    _install_process_hooks()
    _publishers.add(publisher)


def run_opened(run: _Run, install_signal_handlers: bool) -> None:
    _install_process_hooks()
    _runs.add(run)
    if install_signal_handlers:
        _install_signal_handlers()


def run_closed(run: _Run) -> None:
    _runs.discard(run)


def _install_process_hooks() -> None:
    global _process_hooks, _previous_excepthook
    with _lock:
        if _process_hooks:
            return
        _process_hooks = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _excepthook(exc_type, exc, tb) -> None:
    global _uncaught
    _uncaught = (exc_type, exc, tb)
    _previous_excepthook(exc_type, exc, tb)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        if signum in _previous_handlers:
            continue  # once per process: re-installing over a handler that chains to ours would loop
        try:
            _previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, _on_signal)
        except (ValueError, OSError, RuntimeError):
            _previous_handlers.pop(signum, None)


def _on_signal(signum: int, frame) -> None:
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if previous == signal.SIG_IGN:
        return
    for run in list(_runs):
        run._interrupted_by(signum)
    if callable(previous):
        previous(signum, frame)  # KeyboardInterrupt or a framework's own shutdown; the `with` finishes the run
        return
    # The default action ends the process without unwinding anything: say goodbye first, then let it.
    drain(finish_runs=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def drain(finish_runs: bool) -> None:
    """Finish open runs (if asked), then close every publisher within the largest `exit_flush_s`."""
    if finish_runs:
        for run in list(_runs):
            run._finish_at_exit(_uncaught)
    publishers = list(_publishers)
    bound = max((p.settings.exit_flush_s for p in publishers), default=0.0)
    deadline = time.monotonic() + bound
    for publisher in publishers:
        publisher.close(max(deadline - time.monotonic(), 0.0))


def _at_exit() -> None:
    with contextlib.suppress(Exception):  # nothing may fail at exit because of us
        drain(finish_runs=True)


def _after_fork_in_child() -> None:
    global _uncaught
    _runs.clear()
    _uncaught = None
    for publisher in list(_publishers):
        publisher._after_fork_in_child()
