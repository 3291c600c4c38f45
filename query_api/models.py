"""Public response models: what clients get, documented in the OpenAPI schema.

Floats are strict JSON: a NaN or infinite value is sent as null and named in the object's `non_finite`
map ("nan", "+inf" or "-inf"), so strict parsers accept every response and nothing is silently lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

NON_FINITE = Field(default_factory=dict, description='Field or metric -> "nan", "+inf" or "-inf" for values sent '
                                                      "as null because JSON cannot carry them.")
Status = Literal["running", "completed", "failed", "interrupted", "stale"]


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    data_dir: str = Field(description="The data directory this API reads.")
    data_dir_exists: bool


class ErrorPublic(BaseModel):
    detail: str | list[Any] = Field(description="What went wrong and what to do about it.")


class TrendsPublic(BaseModel):
    epochs_since_improvement: int | None = None
    is_plateaued: bool = False
    is_overfitting: bool = False
    is_diverging: bool = False
    suspect_metrics: dict[str, str] = Field(default_factory=dict,
                                            description="Metric -> why it is suspect (all_zero, constant, all_nan).")
    recommendation: str = Field(default="continue",
                                description="continue | stop_early | use_checkpoint | investigate")
    recommendation_epoch: int | None = Field(default=None, description="The checkpoint to use, if any.")
    reason: str = Field(default="", description="The evidence behind the recommendation, in words.")


class RunListItemPublic(BaseModel):
    run_id: str
    project: str | None = None
    name: str | None = None
    status: Status = Field(description="`stale`: running, but silent for longer than its heartbeat allows.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_seen: datetime | None = None
    epochs: int | None = None
    last_epoch: int | None = None
    best_metric: str | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    final_loss: float | None = None
    recommendation: str | None = None
    is_overfitting: bool | None = None
    is_plateaued: bool | None = None
    is_diverging: bool | None = None
    version: int | None = None
    non_finite: dict[str, str] = NON_FINITE


class RunsPagePublic(BaseModel):
    runs: list[RunListItemPublic] = Field(description="Newest first (by start time, then run id).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last page.")
    limit: int


class RunPublic(BaseModel):
    run_id: str
    project: str | None = None
    name: str | None = None
    status: Status
    stored_status: str = Field(description="The status as stored, before the read-time staleness check.")
    config: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    host: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_seen: datetime | None = Field(default=None, description="Newest event time of any type (heartbeat).")
    heartbeat_s: float | None = None
    error: str | None = Field(default=None, description="The whole error text, never truncated.")
    traceback: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    epochs: int = 0
    last_epoch: int | None = None
    best_metric: str | None = None
    best_mode: str = "min"
    best_epoch: int | None = None
    best_value: float | None = None
    final_loss: float | None = None
    trends: TrendsPublic
    events: int = 0
    last_seq: int = 0
    version: int = Field(description="Increases with every change to the run's projections.")
    ingested_at: datetime | None = Field(default=None, description="When the workers last applied events.")
    ingest_lag_s: float | None = Field(
        default=None, description="Seconds between the newest event's own time and its ingestion (ingested_at - "
                                  "last_seen): how far behind training the stored data was when last updated.")
    loss_history: list[float | None] = Field(
        default_factory=list, deprecated=True,
        description="Deprecated: `train/loss` per epoch, for older clients. Use /runs/{run_id}/epochs.")
    val_loss_history: list[float | None] = Field(
        default_factory=list, deprecated=True,
        description="Deprecated: `val/loss` per epoch, for older clients. Use /runs/{run_id}/epochs.")
    non_finite: dict[str, str] = NON_FINITE


class EpochPublic(BaseModel):
    epoch: int
    seq: int | None = None
    ts: datetime | None = None
    samples: int | None = None
    metrics: dict[str, float | None] = Field(description="Non-finite values are null; see `non_finite`.")
    non_finite: dict[str, str] = Field(default_factory=dict, description='Metric -> "nan", "+inf" or "-inf".')


class EpochsPublic(BaseModel):
    run_id: str
    epochs: list[EpochPublic]
    total: int = Field(description="Epochs stored for the run (before `since` and downsampling).")
    last_epoch: int | None = Field(description="Newest epoch stored: pass it as `since` on the next poll.")
    downsampled: bool = Field(description="True when `max_points` dropped epochs from this answer.")


class BestPublic(BaseModel):
    run_id: str
    metric: str
    mode: Literal["min", "max"]
    value: float | None = Field(default=None, description="The best finite value of the metric.")
    epoch: EpochPublic | None = Field(description="None when no epoch has a finite value of the metric.")


class SystemPointPublic(BaseModel):
    seq: int | None = None
    ts: datetime | None = None
    values: dict[str, float | None] = Field(description="cpu_percent, rss_mb, gpu<i>/<figure>, ...")
    non_finite: dict[str, str] = Field(default_factory=dict)


class SystemPublic(BaseModel):
    run_id: str
    points: list[SystemPointPublic]
    total: int = Field(description="Samples stored for the run (before `since` and downsampling).")
    last_seq: int | None = Field(description="Newest sample's seq: pass it as `since` on the next poll.")
    downsampled: bool
