"""`run_started`: who, what and with which configuration a run began (or resumed).

Version 2 adds what the user monitors for early stopping (`monitor`, `mode`, `patience`, `min_delta`;
None means the documented defaults) and `resume` (a later attempt of a run that already has events).
`upcast_run_started_v1_v2` fills the defaults; stored v1 events are never rewritten.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Envelope, MetricName


class RunStartedV1(Envelope):
    type: Literal["run_started"] = "run_started"
    version: Literal[1] = 1
    project: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters, JSON values.")
    tags: list[str] = Field(default_factory=list)
    python_version: str | None = None
    torch_version: str | None = None
    cuda_version: str | None = None
    heartbeat_s: float | None = Field(
        default=None, gt=0, description="How often the producer promises a sign of life (system events)."
    )


class RunStartedV2(RunStartedV1):
    version: Literal[2] = 2  # type: ignore[assignment]
    monitor: MetricName | None = Field(default=None, description="The metric early stopping and the best epoch "
                                                                 "follow. None: val/loss, else train/loss.")
    mode: Literal["min", "max"] | None = Field(default=None, description="None: inferred from the metric's name.")
    patience: int | None = Field(default=None, ge=1, le=1_000_000)
    min_delta: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    resume: bool = Field(default=False, description="A later attempt of an existing run (restarted from a "
                                                    "checkpoint): its epochs replace the earlier attempt's from there.")


def upcast_run_started_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A v1 run monitored the defaults and was never a resumption."""
    return {**raw, "version": 2, "monitor": None, "mode": None, "patience": None, "min_delta": None,
            "resume": False}


RunStarted = RunStartedV2
