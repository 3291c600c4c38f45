"""Named crash points for the fault tests: a real SIGKILL at an exact place, never an exception.

`EPOCHSTREAM_TEST_CRASH_AT=<name>` makes the process that reaches `crash_point(<name>)` kill itself. The
drain has `before_write`, `after_write` (log written, read model not committed), `before_ack` (committed,
not acknowledged); the read model's writer has `before_commit` (its transaction's rows written, not
committed). Unset, each call is one dictionary lookup.

`EPOCHSTREAM_TEST_CRASH_ON=<text>` kills the drain whose batch holds an entry whose payload contains <text>
(an entry that kills its worker every time). `EPOCHSTREAM_TEST_PAUSE_AT=<name>` makes the process stop
itself (SIGSTOP) at `pause_point(<name>)`, once, until someone sends SIGCONT: a worker paused past its lock.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "EPOCHSTREAM_TEST_CRASH_AT"
CRASH_ON_ENV = "EPOCHSTREAM_TEST_CRASH_ON"
PAUSE_ENV = "EPOCHSTREAM_TEST_PAUSE_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def crash_on(payloads) -> None:
    marker = os.environ.get(CRASH_ON_ENV)
    if marker and any(marker.encode() in payload for payload in payloads):
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_ENV) == name:
        del os.environ[PAUSE_ENV]  # once: after SIGCONT the process goes on like any other
        os.kill(os.getpid(), signal.SIGSTOP)
