"""`step`: metrics of one training step (what frameworks log every N steps). Long runs have millions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.envelope import Envelope, MetricName


class StepV1(Envelope):
    type: Literal["step"] = "step"
    version: Literal[1] = 1
    step: int = Field(ge=0, le=2**62, description="The global step number (a re-logged step replaces the old one).")
    epoch: int | None = Field(default=None, ge=0, description="The epoch this step belongs to, when known.")
    metrics: dict[MetricName, float] = Field(default_factory=dict, max_length=512)


Step = StepV1
