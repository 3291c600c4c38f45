"""Where a run's events go: the `Sink` contract a `Run` publishes through.

Three implementations: `producer.publisher.Publisher` (the broker, with the spool behind it),
`producer.testing.RecordingPublisher` (memory, through the real codec, for tests of training code) and
`producer.run.Discard` (nowhere: settings too broken to publish, training goes on). A sink that can also
say what the broker holds of a run (`KnowsSeqs`) lets `start_run` refuse or resume a reused run id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic import BaseModel

    from epochstream.settings import Settings
    from producer.drafts import Built, EpochDraft, StepDraft

    Queued = EpochDraft | StepDraft | Built | BaseModel


class Sink(Protocol):
    """Never blocks and never raises into training code."""

    settings: Settings

    def publish(self, event: Queued) -> None:
        """Queue one event (a model, or a run's draft: `producer.drafts`) and return at once."""

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait at most `timeout` s until everything published so far is delivered; True if nothing is left."""

    def close(self, timeout: float | None = None) -> bool:
        """Flush within a bound, then stop taking events; True if nothing is left undelivered."""

    @property
    def closed(self) -> bool:
        """Closed: a run that ends now cannot publish its end (and need not say so)."""


@runtime_checkable
class KnowsSeqs(Protocol):
    """A sink that can answer `start_run`'s question about an explicit run id."""

    def seq_mark(self, run_id: str) -> int | None:
        """The highest seq the broker has of the run (None: none); raises when the broker cannot be asked."""

    def spool_busy(self) -> bool:
        """Events of this host wait in the spool, so the broker's answer may be incomplete."""
