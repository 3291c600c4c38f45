"""Named crash points for the fault tests: a real SIGKILL at an exact place, never an exception.

`EPOCHSTREAM_TEST_CRASH_AT=<name>` makes the process that reaches `crash_point(<name>)` kill itself. The
drain has `before_write`, `after_write` (log written, read model not committed), `before_ack` (committed,
not acknowledged); the read model's writer has `before_commit` (its transaction's rows written, not
committed). Unset, each call is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "EPOCHSTREAM_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
