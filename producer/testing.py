"""Test helpers shipped with the library, for users and for our own suites.

Testing training code without a broker:

    from producer.testing import recording_run

    def test_my_training_logs_sane_epochs():
        with recording_run(project="unit") as run:
            train(run, epochs=2)                     # your code, calling run.log_epoch(...)
        rec = run.publisher                          # a RecordingPublisher
        assert [e.epoch for e in rec.epochs] == [0, 1]
        assert rec.finished.status == "completed"
        assert all(v > 0 for v in rec.metric("train/loss"))
        assert not rec.warnings                      # no all-zero / constant / NaN series

Every recorded event went through the real wire codec (encode, then decode as a worker would), so an
event your code makes that a worker would dead-letter fails here too. Anything a `Run` does not publish
(a bad metric value is logged and dropped) is not recorded.

For suites that talk to a real Redis: `unique_namespace()` gives each test its own key prefix, and
`delete_namespace()` removes it afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from pydantic import BaseModel

from epochstream.settings import Settings
from producer.drafts import built
from producer.run import Run, start_run
from schemas.codec import decode, encode
from schemas.epoch import EpochV2
from schemas.registry import Event
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import SystemV2


class RecordingPublisher:
    """Stands where a `Publisher` goes (`start_run(..., publisher=RecordingPublisher())`) and keeps every
    event in memory, decoded, in publish order. Thread-safe. Default settings: the environment's, with
    signal handlers off (tests should not change how the test runner handles Ctrl-C)."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings if settings is not None else Settings(install_signal_handlers=False)
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def publish(self, event: BaseModel) -> None:
        decoded = decode(encode(built(event)))
        with self._lock:
            self.events.append(decoded)

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def close(self, timeout: float | None = None) -> bool:
        return True

    # -- reading what was recorded ---------------------------------------------------------------------
    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.type == event_type]

    @property
    def started(self) -> RunStartedV2 | None:
        found = self.of_type("run_started")
        return found[0] if found else None  # type: ignore[return-value]

    @property
    def epochs(self) -> list[EpochV2]:
        return self.of_type("epoch")  # type: ignore[return-value]

    @property
    def steps(self) -> list[StepV1]:
        return self.of_type("step")  # type: ignore[return-value]

    @property
    def system(self) -> list[SystemV2]:
        return self.of_type("system")  # type: ignore[return-value]

    @property
    def finished(self) -> RunFinishedV2 | None:
        found = self.of_type("run_finished")
        return found[-1] if found else None  # type: ignore[return-value]

    def metric(self, name: str) -> list[float]:
        """The values of one metric, epoch by epoch (epochs without it are skipped)."""
        return [e.metrics[name] for e in self.epochs if name in e.metrics]

    @property
    def warnings(self) -> list[str]:
        """Every warning attached to an epoch (all-zero, constant or NaN series)."""
        return [w for e in self.epochs for w in e.warnings]


@contextmanager
def recording_run(project: str = "test", name: str | None = None, config: dict[str, Any] | None = None,
                  tags: list[str] | None = None, *, settings: Settings | None = None,
                  run_id: str | None = None) -> Iterator[Run]:
    """`start_run` with a `RecordingPublisher`: yields the run; `run.publisher` holds what it published.

    Exceptions from the block are recorded (`run_finished` failed, with the traceback) and re-raised, as
    with a real run.
    """
    publisher = RecordingPublisher(settings)
    with start_run(project, name, config, tags, run_id=run_id, settings=publisher.settings,
                   publisher=publisher) as run:
        yield run


def unique_namespace(prefix: str = "es-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    """Remove every key of one namespace (never FLUSHALL: the server may be shared)."""
    deleted = 0
    for pattern in (f"{namespace}:*", f"rq:*{namespace}*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        if batch:
            deleted += client.delete(*batch)
    return deleted
