"""No SQLite connection crosses a fork: `os.fork` waits while this process reads or writes the read model.

An RQ worker forks a work horse per drain job while its scheduler thread may be reading the read model (the
SQL snapshot, every 10 s). SQLite keeps its POSIX-lock bookkeeping per process, keyed by file: a horse forked
during such a read inherits the parent's bookkeeping of locks the kernel gave to the parent only, and SQLite's
documentation is plain that a connection must not be carried across fork(). Seen here: now and then a
partition's first drain committed its batch (the commit read back on its own connection) and the commit was
gone afterwards (the tracking record back at its claim), its entries already acknowledged — gone from the API
until a rebuild. With the worker's snapshot refresh switched off, 8 of 8 runs of `tests/workers/test_scale.py`
passed against about one in two before; with this guard, see that test.

`no_fork()` around read-model use in a process that forks; the registered at-fork hook takes the same lock,
so a fork happens only between such uses. The child starts with a fresh, free lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_guard = threading.Lock()


def _before_fork() -> None:
    _guard.acquire()


def _after_fork_in_parent() -> None:
    _guard.release()


def _after_fork_in_child() -> None:
    global _guard
    _guard = threading.Lock()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def no_fork() -> Iterator[None]:
    """Hold off any fork of this process for the duration (the read model is open meanwhile)."""
    with _guard:
        yield
