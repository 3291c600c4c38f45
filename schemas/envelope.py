"""The envelope every event carries, whatever its type and version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

_ZERO = timedelta(0)
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
METRIC_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}$"

# The pydantic error type of an event_id that is not `<run_id>:<seq>`: the codec turns it into EventIdMismatch.
EVENT_ID_MISMATCH = "event_id_mismatch"

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, description="Run identifier: letters, digits, _ . : -")]
MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]


class Envelope(BaseModel):
    """Fields common to all events. `event_id` is the idempotency key; `seq` orders a run's events.

    The producer's id rule binds an event to its run: `event_id == f"{run_id}:{seq}"` (`event_id_of`). An
    event that breaks it is refused, so no entry can claim another run's identity (and hide, or be merged
    with, that run's event wherever events are de-duplicated).
    """

    # NaN and ±inf are data (a diverging run), so they travel as the strings "NaN", "Infinity", "-Infinity".
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    run_id: RunId
    seq: Annotated[int, Field(ge=0, description="Per-run, strictly increasing from the producer.")]
    ts: datetime = Field(description="When it happened, UTC.")
    host: Annotated[str, Field(max_length=255)] = ""
    pid: Annotated[int, Field(ge=0)] = 0

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive timestamp is taken as UTC: that is what every producer we know of meant.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.utcoffset() == _ZERO:
            return value  # already UTC (what our producers send): no conversion on the hot path
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00; pydantic only reports ValueError as invalid
            raise ValueError("timestamp is out of range once converted to UTC") from None

    @model_validator(mode="after")
    def _bound_to_run(self) -> Envelope:
        expected = event_id_of(self.run_id, self.seq)
        if self.event_id != expected:
            raise PydanticCustomError(
                EVENT_ID_MISMATCH,
                "'{event_id}' does not belong to run '{run_id}' (seq {seq}): the producer's rule is "
                "'<run_id>:<seq>', so it must be '{expected}'; an entry claiming another run's identity (or from a "
                "producer that builds ids another way) is refused",
                {"event_id": self.event_id, "run_id": self.run_id, "seq": self.seq, "expected": expected})
        return self


def event_id_of(run_id: str, seq: int) -> str:
    """The producer's id rule: an event's id names its run and its place in it."""
    return f"{run_id}:{seq}"


def utc_now() -> datetime:
    return datetime.now(UTC)
