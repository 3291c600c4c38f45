"""How a run ended, from the exception (if any) that ended it and the signal (if any) that interrupted it."""

from __future__ import annotations

import signal
import traceback as tb

from schemas.run_finished import RunStatus


def outcome(exc_type, exc, traceback_, signum: int | None = None) -> tuple[RunStatus, str | None, str | None, int]:
    """(status, error, traceback, exit code) for a run ending with this exception (or none) and signal."""
    trace = "".join(tb.format_exception(exc_type, exc, traceback_)) if exc is not None else None
    text = "".join(tb.format_exception_only(exc_type, exc)).rstrip("\n") if exc is not None else None
    if signum is not None:
        name = _signal_name(signum)
        return "interrupted", f"interrupted by {name}" + (f": {text}" if text else ""), trace, 128 + signum
    if exc is None:
        return "completed", None, None, 0
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", text, trace, 128 + signal.SIGINT
    if isinstance(exc, SystemExit) and exc.code in (None, 0):
        return "completed", None, None, 0
    if isinstance(exc, SystemExit):
        return "failed", text, trace, exc.code if isinstance(exc.code, int) else 1
    return "failed", text, trace, 1


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
