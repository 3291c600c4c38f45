"""`run_started`: who, what and with which configuration a run began."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Envelope


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


RunStarted = RunStartedV1
