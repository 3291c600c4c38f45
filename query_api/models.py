"""Public response models."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EpochPublic(BaseModel):
    epoch: int
    metrics: dict[str, float | None] = Field(description="Non-finite values are null; see `non_finite`.")
    non_finite: dict[str, str] = Field(default_factory=dict, description='Metric -> "nan", "+inf" or "-inf".')


class EpochsPublic(BaseModel):
    run_id: str
    epochs: list[EpochPublic]


class BestPublic(BaseModel):
    run_id: str
    metric: str
    mode: str
    epoch: EpochPublic | None = Field(description="None when no epoch has a finite value of the metric.")
