"""The publisher thread's link to the broker: one client (made when needed, dropped on any failure), the
back-off while the broker is away, and the counts of what it took.

A new client first checks the deployment's partition count (`epochstream.agreement`): a producer that
counts partitions differently from the workers would put runs where nobody reads them, so it refuses to
send (the events stay in the spool, and are delivered re-routed by a process with the recorded count).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from epochstream.agreement import agree
from epochstream.settings import Settings
from producer.delivery import away_reason, client_for, error_code, send
from producer.notices import Notices, log
from producer.routes import Routes
from producer.spool import Record
from schemas.keys import Keys

MIN_BACKOFF_S, MAX_BACKOFF_S = 0.1, 2.0


class BrokerLink:
    """Used by the publisher's thread only. `drop(count, kind, message, identity)` counts events refused for
    good in their run's report."""

    def __init__(self, settings: Settings, keys: Keys, url_resolver: Callable[[Settings], str], notices: Notices,
                 routes: Routes, drop: Callable[..., None], spool_dir: Path):
        self.settings, self.keys, self.notices, self.routes = settings, keys, notices, routes
        self.published = 0  # events the broker added (never counting a retried event twice)
        self.skipped = 0  # events sent again that the broker already had (a retry after a lost reply)
        self.errors: Counter[str] = Counter()  # failed delivery attempts by broker error code
        self.last_error: str | None = None  # the latest one, in words
        self.down = False  # the last delivery attempt failed
        self.retry_at = 0.0
        self.failed_pass = 0  # the pass in which a delivery attempt last failed
        self._resolve_url = url_resolver
        self._drop = drop
        self._spool_dir = spool_dir
        self._client: redis.Redis | None = None
        self._backoff = MIN_BACKOFF_S

    def backing_off(self) -> bool:
        """The broker failed recently: wait for `retry_at` before trying again."""
        return self.down and time.monotonic() < self.retry_at

    def retry_now(self) -> None:
        self.retry_at = 0.0

    def deliver(self, records: list[Record], current: int) -> bool:
        """Send `records`; True when the broker took them (or refused some for good: counted as dropped).
        False keeps all of them for a retry: what did go in is skipped then."""
        try:
            if self._client is None:
                self._client = self._connect()
            result = send(self._client, records)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the events stay safe in the spool
            if not isinstance(exc, redis.RedisError | OSError) and error_code(exc) not in ("NO_BROKER", "PARTITIONS"):
                self.notices.warn(f"deliver-{type(exc).__name__}", f"unexpected delivery error: {exc!r}")
            self._away(exc, current)
            return False
        self.published += result.added
        self.skipped += result.skipped
        self._notice_reuse(result.before)
        if result.retry is not None:
            self._away(result.retry, current)
            return False
        for seq_key, count, reason in result.rejected:
            self._drop(count, "rejected", f"the broker refused events for good, which were dropped: {reason}",
                       self.routes.run_of(seq_key))
        if self.down:
            self.down = False
            self._backoff = MIN_BACKOFF_S
            self.notices.forget("broker-away")
            log.info("epochstream: the broker answers again; delivering spooled events")
        return True

    def _connect(self) -> redis.Redis:
        client = client_for(self._resolve_url(self.settings), self.settings.publish_timeout_s)
        try:
            agree(client, self.keys)
        except BaseException:
            client.close()
            raise
        return client

    def _notice_reuse(self, before: dict[str, tuple[int, int]]) -> None:
        """An attempt that could not ask at its start whether its run id had events learns it here."""
        for identity, run_mark in self.routes.newly_reused(before):
            self.notices.warn(f"reused-{identity.run_id}",
                              f"run {identity.run_id} already had events from another process (up to seq "
                              f"{run_mark}): this process's events follow them as a later attempt of the same "
                              "run. Give each run its own id, or pass resume=True when continuing one on purpose")

    def _away(self, exc: BaseException, current: int) -> None:
        self.close()
        self.down = True
        self.failed_pass = current
        self.retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        code = error_code(exc)
        self.errors[code] += 1
        self.last_error = f"{code}: {exc}"
        self.notices.warn("broker-away", f"{away_reason(code, exc)}; events are kept, in order, in the spool at "
                                         f"{self._spool_dir} and retried with back-off. This process delivers them "
                                         "when the broker takes them; if it exits first, `epochstream spool push`, "
                                         "`epochstream up` or `epochstream worker` on this host delivers them")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # it may be broken already
                client.close()
