"""The envelope every event carries, whatever its type and version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ZERO = timedelta(0)
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
METRIC_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}$"

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, description="Run identifier: letters, digits, _ . : -")]
MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]


class Envelope(BaseModel):
    """Fields common to all events. `event_id` is the idempotency key; `seq` orders a run's events."""

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


def utc_now() -> datetime:
    return datetime.now(UTC)
