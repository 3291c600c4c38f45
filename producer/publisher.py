"""The background publisher: training threads hand it events; one daemon thread XADDs them in batches.

The caller's side is a bounded in-process queue and `put_nowait`: a publish call never blocks and never
raises. Everything that can go wrong (no broker, a slow broker) happens on the background thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import redis
from pydantic import BaseModel

from epochstream.broker import connect, resolve_url
from epochstream.errors import EpochstreamError
from epochstream.settings import Settings
from schemas.codec import encode
from schemas.keys import PAYLOAD_FIELD, Keys

log = logging.getLogger("epochstream.producer")

MAX_BATCH = 500


class Publisher:
    def __init__(self, settings: Settings, *, url_resolver: Callable[[Settings], str] = resolve_url,
                 queue_size: int = 100_000):
        self.settings = settings
        self.keys = Keys(settings.namespace, settings.partitions)
        self._resolve_url = url_resolver
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=queue_size)
        self._client: redis.Redis | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.dropped = 0
        self.published = 0
        self._warned: set[str] = set()

    # -- caller side: never blocks, never raises -------------------------------------------------------
    def publish(self, event: BaseModel) -> None:
        try:
            item = (self.keys.stream_for_run(event.run_id), encode(event))  # type: ignore[attr-defined]
            self._ensure_thread()
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self._warn_once("queue-full", "publish queue full: events are being dropped")
        except Exception as exc:  # noqa: BLE001 - the training loop must never see our failures
            self._warn_once(f"publish-{type(exc).__name__}", f"could not queue an event: {exc}")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is handed to the broker; False if the timeout ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return self._queue.unfinished_tasks == 0

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=2.0)

    # -- background side -------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="epochstream-publisher", daemon=True)
                self._thread.start()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("epochstream: %s", message)

    def _take_batch(self) -> list[tuple[str, bytes]] | None:
        first = self._queue.get()
        if first is None:
            self._queue.task_done()
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.task_done()
                self._stopping.set()
                break
            batch.append(item)
        return batch

    def _send(self, batch: list[tuple[str, bytes]]) -> None:
        if self._client is None:
            self._client = connect(self._resolve_url(self.settings))
        pipe = self._client.pipeline(transaction=False)
        for stream, payload in batch:
            pipe.xadd(stream, {PAYLOAD_FIELD: payload})
        pipe.execute()

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            backoff = 0.05
            while True:
                try:
                    self._send(batch)
                    self.published += len(batch)
                    break
                except (redis.RedisError, OSError, EpochstreamError) as exc:
                    self._client = None
                    self._warn_once("send", f"broker unavailable, retrying: {exc}")
                    if self._stopping.is_set():
                        self.dropped += len(batch)
                        break
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
            for _ in batch:
                self._queue.task_done()
            if self._stopping.is_set() and self._queue.empty():
                return
