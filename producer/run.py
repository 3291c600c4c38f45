"""A training run: `start_run(...)` publishes `run_started`; the context manager publishes `run_finished`."""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
import time
import traceback as tb
import uuid
from typing import Any

from epochstream.settings import Settings
from producer.publisher import Publisher
from schemas.envelope import utc_now
from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV1, RunStatus
from schemas.run_started import RunStartedV1
from schemas.system import GpuSample, SystemV1


def new_run_id() -> str:
    return uuid.uuid4().hex


class Run:
    """One training run. Every method returns at once and never raises into training code."""

    def __init__(self, publisher: Publisher, run_id: str, project: str):
        self.publisher = publisher
        self.run_id = run_id
        self.project = project
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._started = time.monotonic()
        self.finished = False

    def _envelope(self) -> dict[str, Any]:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        # run_id + seq is unique per event and deterministic, which makes spool replays idempotent.
        return {"event_id": f"{self.run_id}:{seq}", "run_id": self.run_id, "seq": seq, "ts": utc_now(),
                "host": self._host, "pid": self._pid}

    def _emit(self, model: type, **body: Any) -> None:
        try:
            self.publisher.publish(model(**self._envelope(), **body))
        except Exception as exc:  # noqa: BLE001 - bad values from training code must not crash training
            self.publisher._warn_once(f"emit-{model.__name__}", f"event not published: {exc}")

    def log_epoch(self, epoch: int, metrics: dict[str, float], samples: int | None = None) -> None:
        self._emit(EpochV2, epoch=epoch, metrics=metrics, samples=samples)

    def log_system(self, gpus: list[GpuSample] | None = None, cpu_percent: float | None = None,
                   rss_mb: float | None = None) -> None:
        self._emit(SystemV1, gpus=gpus or [], cpu_percent=cpu_percent, rss_mb=rss_mb)

    def finish(self, status: RunStatus = "completed", error: str | None = None, traceback: str | None = None,
               exit_code: int | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self._emit(RunFinishedV1, status=status, error=error, traceback=traceback, exit_code=exit_code,
                   duration_s=time.monotonic() - self._started)

    def flush(self, timeout: float = 10.0) -> bool:
        return self.publisher.flush(timeout)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, traceback_) -> bool:
        if exc is None:
            self.finish("completed", exit_code=0)
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("interrupted", error=repr(exc), exit_code=130)
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}",
                        traceback="".join(tb.format_exception(exc_type, exc, traceback_)), exit_code=1)
        self.flush(5.0)
        return False  # the exception, if any, goes on to the caller


_default_publisher: Publisher | None = None
_default_lock = threading.Lock()


def default_publisher(settings: Settings | None = None) -> Publisher:
    global _default_publisher
    with _default_lock:
        if _default_publisher is None:
            _default_publisher = Publisher(settings or Settings())
        return _default_publisher


def _torch_versions() -> tuple[str | None, str | None]:
    torch = sys.modules.get("torch")  # only if training code already imported it: never slow our import
    if torch is None:
        return None, None
    return getattr(torch, "__version__", None), getattr(getattr(torch, "version", None), "cuda", None)


def start_run(project: str, name: str | None = None, config: dict[str, Any] | None = None,
              tags: list[str] | None = None, *, run_id: str | None = None, settings: Settings | None = None,
              publisher: Publisher | None = None) -> Run:
    publisher = publisher or default_publisher(settings)
    run = Run(publisher, run_id or new_run_id(), project)
    torch_version, cuda_version = _torch_versions()
    run._emit(RunStartedV1, project=project, name=name, config=config or {}, tags=tags or [],
              python_version=platform.python_version(), torch_version=torch_version, cuda_version=cuda_version,
              heartbeat_s=publisher.settings.system_interval_s)
    return run
