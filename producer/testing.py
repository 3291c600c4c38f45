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
event your code makes that a worker would dead-letter fails here too. What a `Run` could not publish as
given shows as it would in the API: `rec.drops` is the run's latest drop report (from its heartbeats and
`run_finished`), `rec.dropped` the number of values and events lost:

    with recording_run() as run:
        run.log_epoch(0, {"train/loss": 0.4, "acc@1": 0.9, "val/loss": None})
    assert run.publisher.drops.counts == {"renamed": 1, "missing": 1}
    assert run.publisher.dropped == 1

Resumed runs too: a `RecordingPublisher` answers `start_run` as the broker would (it knows the seqs it
recorded), so a second `recording_run(run_id=..., resume=True, publisher=rec)` continues the first as a
later attempt (`rec.attempts`), and one without `resume=True` is refused and gets a fresh id.

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
from producer.drops import KEPT
from producer.run import Run, start_run
from schemas.codec import decode, encode
from schemas.drops import DropReport
from schemas.epoch import EpochV2
from schemas.registry import Event
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import SystemV2


class RecordingPublisher:
    """A `producer.sink.Sink` that stands where a `Publisher` goes (`start_run(...,
    publisher=RecordingPublisher())`) and keeps every event in memory, decoded, in publish order.
    Thread-safe. Default settings: the environment's, with signal handlers off (tests should not change
    how the test runner handles Ctrl-C)."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings if settings is not None else Settings(install_signal_handlers=False)
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def publish(self, event: BaseModel) -> None:
        decoded = decode(encode(built(event)))
        with self._lock:
            self.events.append(decoded)

    def seq_mark(self, run_id: str) -> int | None:
        """As the broker's mark: the highest seq recorded for `run_id`, None when it has none."""
        with self._lock:
            seqs = [e.seq for e in self.events if e.run_id == run_id]
        return max(seqs) if seqs else None

    def spool_busy(self) -> bool:
        return False  # nothing is ever spooled: the recorded events are the whole answer

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def close(self, timeout: float | None = None) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False  # it records whatever comes, even after close()

    # -- reading what was recorded ---------------------------------------------------------------------
    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.type == event_type]

    @property
    def started(self) -> RunStartedV2 | None:
        found = self.of_type("run_started")
        return found[0] if found else None  # type: ignore[return-value]

    @property
    def attempts(self) -> list[RunStartedV2]:
        """Every `run_started`: a resumed run has one per attempt (`resume` True from the second on)."""
        return self.of_type("run_started")  # type: ignore[return-value]

    @property
    def drops(self) -> DropReport | None:
        """The newest drop report (highest seq) of the recorded system and run_finished events, as the API
        shows it; None when nothing was dropped or renamed."""
        reports = [e for e in self.events if e.type in ("system", "run_finished") and e.drops is not None]
        return max(reports, key=lambda e: e.seq).drops if reports else None  # type: ignore[union-attr]

    @property
    def dropped(self) -> int:
        """Values and events lost, as the API's `dropped`: every kind of the report but `renamed`."""
        report = self.drops
        return sum(n for kind, n in report.counts.items() if kind not in KEPT) if report else 0

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
                  run_id: str | None = None, resume: bool = False,
                  publisher: RecordingPublisher | None = None) -> Iterator[Run]:
    """`start_run` with a `RecordingPublisher`: yields the run; `run.publisher` holds what it published.

    Exceptions from the block are recorded (`run_finished` failed, with the traceback) and re-raised, as
    with a real run. Pass the `publisher` of an earlier recording run (and its `run_id`, `resume=True`) to
    record a later attempt of it.
    """
    publisher = publisher if publisher is not None else RecordingPublisher(settings)
    with start_run(project, name, config, tags, run_id=run_id, settings=publisher.settings,
                   publisher=publisher, resume=resume) as run:
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
