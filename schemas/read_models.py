"""The run summary: written by the workers into the read model, read by the API and the CLI.

Non-finite floats are stored as the strings "NaN", "Infinity", "-Infinity" (as on the wire); readers
turn them into null plus a marker for strict-JSON clients.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SummaryStatus = Literal["running", "completed", "failed", "interrupted", "stale"]
Recommendation = Literal["continue", "stop_soon", "stop_early", "use_checkpoint", "investigate", "no_data"]


class TrendFlags(BaseModel):
    """The trend verdict on a run (README, "Trend flags"). Every float is finite or None: a non-finite
    monitored value shows as `last_value` None with `non_finite_epoch` set, so any JSON encoder will do."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    epochs_since_improvement: int | None = Field(
        default=None, description="Keras's/Lightning's `wait`: epochs reporting the monitored metric since it "
                                  "last beat its best by more than min_delta.")
    is_plateaued: bool = Field(default=False, description="The monitored metric's trend over the window is flat "
                                                          "within its noise.")
    is_overfitting: bool = Field(default=False, description="Validation level worse than its best beyond its noise "
                                                            "while the training curve kept improving.")
    is_diverging: bool = Field(default=False, description="A loss or the monitored metric is not finite, or the "
                                                          "training loss is past 2x its best.")
    suspect_metrics: dict[str, str] = Field(
        default_factory=dict, description="Metric -> why it is suspect (all_zero, constant, all_nan)."
    )
    should_stop: bool = Field(default=False, description="Early stopping would stop now (patience used up, or "
                                                         "the monitored value is not finite).")
    recommendation: Recommendation = "continue"
    recommendation_epoch: int | None = Field(default=None, description="The checkpoint to use, if any.")
    reason: str = Field(default="", description="The evidence behind the recommendation, in words.")
    evidence: list[str] = Field(default_factory=list, description="The facts behind the verdict, one per line.")
    monitor: str | None = Field(default=None, description="The metric judged.")
    mode: Literal["min", "max"] | None = None
    patience: int | None = None
    min_delta: float | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    last_epoch: int | None = Field(default=None, description="The monitored metric's latest epoch.")
    last_value: float | None = Field(default=None, description="Its value there; None when not finite.")
    change_since_best: float | None = Field(default=None, description="last_value - best_value.")
    epochs_since_best: int | None = Field(default=None, description="last_epoch - best_epoch.")
    stop_epoch: int | None = Field(default=None, description="The first epoch early stopping would stop at.")
    stop_in: int | None = Field(default=None, description="Epochs without improvement left before it stops.")
    trend: float | None = Field(default=None, description="The monitored metric's slope per epoch over the window.")
    noise: float | None = Field(default=None, description="Its epoch-to-epoch noise (a standard deviation) there.")
    trend_epochs: list[int] | None = Field(default=None, description="[first, last] epoch of that window.")
    non_finite_epoch: int | None = Field(default=None, description="Since when the diverged metric is not finite.")


class AttemptSummary(BaseModel):
    """One attempt of a run: the first start, or a resumption from a checkpoint (`resume`)."""

    attempt: int
    seq: int = Field(description="The seq of its run_started: events above it (and below the next) are its own.")
    started_at: datetime
    host: str | None = None
    pid: int | None = None
    resume: bool = False
    status: str | None = Field(default=None, description="How it ended; null: no run_finished (still running, or "
                                                         "the process died without a word).")
    finished_at: datetime | None = None
    exit_code: int | None = None


class DropsSummary(BaseModel):
    counts: dict[str, int] = Field(default_factory=dict)
    examples: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    run_id: str
    project: str | None = None
    name: str | None = None
    status: SummaryStatus = "running"
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
    best_mode: Literal["min", "max"] = "min"
    patience: int | None = Field(default=None, description="As given at start_run; null: the default.")
    min_delta: float | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    final_loss: float | None = None
    trends: TrendFlags = Field(default_factory=TrendFlags)
    last_seq: int = 0
    events: int = Field(default=0, description="Distinct events applied to this run.")
    attempts: list[AttemptSummary] = Field(default_factory=list)
    drops: DropsSummary | None = Field(default=None, description="What the producer could not publish as given.")
    dropped: int = Field(default=0, description="Values and events lost (every drop kind but `renamed`).")
    clock_ahead_s: float | None = Field(default=None, description="Set when events came stamped more than a day "
                                                                  "ahead of their ingestion (a wrong clock): the "
                                                                  "largest lead seen, in seconds. Those events are "
                                                                  "ordered by ingestion time instead.")
    version: int = Field(default=0, description="Increases with every change: the basis of ETags.")
    ingested_at: datetime | None = None


STALE_FLOOR_S = 60.0


def effective_status(summary: RunSummary, now: datetime) -> SummaryStatus:
    """The status a reader should show: a `running` run silent for max(3 x heartbeat, 60 s) is `stale`.

    Pure: `now` is passed in. A run with no heartbeat promise uses the 60 s floor.
    """
    if summary.status != "running" or summary.last_seen is None:
        return summary.status
    limit = max(3 * (summary.heartbeat_s or 0.0), STALE_FLOOR_S)
    return "stale" if (now - summary.last_seen).total_seconds() > limit else "running"
