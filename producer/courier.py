"""Delivering what dead producers left in this host's spool, with no training process involved.

A training process that exits while the broker is away leaves its events in the spool. Whatever runs
on that host next delivers them: `epochstream spool push` (`push`, once), and `epochstream worker` (a
`Courier` thread; `epochstream up` runs workers). Both adopt every segment whose writer is gone (its
lock is free), deliver it in order, exactly once (the broker side skips what it already has, see
`producer.delivery`), and delete it. A segment whose writer is alive is left to that writer.

The spool is the one of `EPOCHSTREAM_SPOOL_DIR` and `EPOCHSTREAM_NAMESPACE`: the same settings as the
training processes, or nothing is found.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from epochstream.broker import resolve_url
from epochstream.settings import Settings
from producer.notices import log
from producer.publisher import Publisher
from producer.spool.status import ORPHANED, OwnerStatus, spool_status

INTERVAL_S = 1.0  # a courier looks for new orphans this often


def spool_directory(settings: Settings) -> Path:
    return settings.resolved_spool_dir() / settings.namespace


@dataclass
class PushResult:
    delivered: int  # events the broker added
    already_there: int  # events it had from an earlier try
    dropped: int = 0  # events the broker refused for good (WRONGTYPE), each reason logged
    left: list[OwnerStatus] = field(default_factory=list)  # what still waits, and why
    error: str | None = None  # the broker's last error, when one stopped the push

    @property
    def orphans_left(self) -> int:
        """Events whose writer is gone that are still undelivered (0: the push did its job)."""
        return sum(o.events for o in self.left if o.state == ORPHANED)


def push(settings: Settings, timeout: float = 10.0,
         url_resolver: Callable[[Settings], str] = resolve_url) -> PushResult:
    """Deliver every orphaned segment now, retrying with back-off for at most `timeout` seconds."""
    publisher = Publisher(settings, url_resolver=url_resolver)
    deadline = time.monotonic() + max(timeout, 0.0)
    try:
        while not publisher.flush(max(deadline - time.monotonic(), 0.0)) and time.monotonic() < deadline:
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))
    finally:
        publisher.close(0.0)
    left = spool_status(spool_directory(settings))
    return PushResult(publisher.published, publisher.skipped, publisher.dropped, left,
                      publisher.last_error if any(o.state == ORPHANED for o in left) else None)


class Courier:
    """A daemon thread that delivers orphaned segments as they appear, until `stop()`."""

    def __init__(self, settings: Settings, url_resolver: Callable[[Settings], str] = resolve_url,
                 interval_s: float = INTERVAL_S):
        self.settings = settings
        self.interval_s = interval_s
        self.publisher = Publisher(settings, url_resolver=url_resolver)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Courier:
        self._thread = threading.Thread(target=self._loop, name="epochstream-spool-courier", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        delivered = 0
        while not self._stop.is_set():
            try:
                self.publisher.flush(self.interval_s * 5)
                if self.publisher.published > delivered:
                    log.info("epochstream: delivered %d spooled event(s) from %s",
                             self.publisher.published - delivered, self.publisher.spool_dir)
                    delivered = self.publisher.published
            except Exception:  # noqa: BLE001 - a courier must not take its host process down
                log.warning("epochstream: the spool courier failed a round (carrying on)", exc_info=True)
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop looking; what was adopted and not delivered is released for the next process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.publisher.close(0.0)
