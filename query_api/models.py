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
                                description="continue | stop_soon | stop_early | use_checkpoint | investigate | "
                                            "no_data (see README, Trend flags)")
    recommendation_epoch: int | None = Field(default=None, description="The checkpoint to use, if any.")
    reason: str = Field(default="", description="The evidence behind the recommendation, in words.")
    should_stop: bool = Field(default=False, description="Early stopping (Keras/Lightning rule) would stop now.")

    model_config = {"extra": "allow"}  # the trend functions may add evidence fields


class AttemptPublic(BaseModel):
    attempt: int
    seq: int = Field(description="Its run_started's seq: events from it up to the next attempt's are its own.")
    started_at: datetime
    host: str | None = None
    pid: int | None = None
    resume: bool = Field(description="Started with resume=True from an earlier attempt's checkpoint.")
    status: str | None = Field(default=None, description="How it ended; null: no run_finished (still running, or "
                                                         "the process died without a word).")
    finished_at: datetime | None = None
    exit_code: int | None = None


class DropsPublic(BaseModel):
    counts: dict[str, int] = Field(description="Kind -> values or events (`renamed`: kept under a valid name).")
    examples: list[str] = Field(description="A few of them in words.")


CLOCK_AHEAD = ("Set when events came stamped further ahead of their ingestion than the workers' `future_skew_s` (a "
               "day by default: a wrong clock): the largest lead seen, in seconds. Those events are ordered by "
               "ingestion time (newest-first listing, last_seen, staleness); their own ts is kept as sent.")


class RunListItemPublic(BaseModel):
    run_id: str
    project: str | None = None
    name: str | None = None
    status: Status = Field(description="`stale`: running, but silent for longer than its heartbeat allows.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_seen: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    epochs: int | None = None
    last_epoch: int | None = None
    steps: int | None = None
    best_metric: str | None = None
    best_mode: str | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    final_loss: float | None = None
    recommendation: str | None = None
    reason: str | None = None
    is_overfitting: bool | None = None
    is_plateaued: bool | None = None
    is_diverging: bool | None = None
    should_stop: bool | None = None
    attempts: int = 0
    dropped: int = Field(default=0, description="Values or events the producer could not publish (see the run).")
    clock_ahead_s: float | None = Field(default=None, description=CLOCK_AHEAD)
    version: int | None = None
    non_finite: dict[str, str] = NON_FINITE


class RunsPagePublic(BaseModel):
    runs: list[RunListItemPublic] = Field(description="In the order asked for (default: newest first by start time, "
                                                      "then run id).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int
    total: int = Field(description="Runs matching the filters, over all pages.")


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
    steps: int = 0
    last_step: int | None = None
    system_samples: int = 0
    best_metric: str | None = None
    best_mode: str = "min"
    best_epoch: int | None = None
    best_value: float | None = None
    final_loss: float | None = None
    patience: int | None = Field(default=None, description="Early-stopping patience given at start (null: default).")
    min_delta: float | None = None
    trends: TrendsPublic
    events: int = 0
    last_seq: int = 0
    attempts: list[AttemptPublic] = Field(default_factory=list, description="The first start and every resumption.")
    drops: DropsPublic | None = Field(default=None, description="What the producer could not publish as given.")
    dropped: int = Field(default=0, description="Values and events lost (every kind but `renamed`).")
    clock_ahead_s: float | None = Field(default=None, description=CLOCK_AHEAD)
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
    ema: float | None = Field(default=None, description="The smoothing weight `metrics` were smoothed with "
                                                        "(over every stored epoch); null: raw values.")


class StepPublic(BaseModel):
    step: int
    epoch: int | None = None
    seq: int | None = Field(default=None, description="Null in a downsampled answer.")
    ts: datetime | None = None
    metrics: dict[str, float | None] = Field(description="Non-finite values are null; see `non_finite`. In a "
                                                         "downsampled answer: the metrics that kept this step.")
    non_finite: dict[str, str] = Field(default_factory=dict)


class StepsPublic(BaseModel):
    run_id: str
    steps: list[StepPublic]
    total: int = Field(description="Steps stored for the run.")
    downsampled: bool = Field(description="True when `max_points` thinned the answer (each metric separately).")
    next_since: int | None = Field(description="Without max_points, more rows follow: pass this as `since`.")
    ema: float | None = Field(default=None, description="The smoothing weight `metrics` were smoothed with "
                                                        "(over every stored step); null: raw values.")


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
