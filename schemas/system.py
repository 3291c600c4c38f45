"""`system`: one background sample of the GPUs this process uses and of the host. Also the heartbeat.

Version 2 adds `drops`, the run's cumulative drop report, so a long run shows what it lost while it runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.drops import DropReport
from schemas.envelope import Envelope


class GpuSample(BaseModel):
    """One GPU; any figure the driver did not give is None, the others are still sent."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    index: int = Field(ge=0)
    name: str | None = None
    mem_allocated_mb: float | None = None
    mem_reserved_mb: float | None = None
    mem_peak_mb: float | None = None
    mem_total_mb: float | None = None
    utilization_pct: float | None = None


class SystemV1(Envelope):
    type: Literal["system"] = "system"
    version: Literal[1] = 1
    gpus: list[GpuSample] = Field(default_factory=list, max_length=64)
    cpu_percent: float | None = None
    rss_mb: float | None = None


class SystemV2(SystemV1):
    version: Literal[2] = 2  # type: ignore[assignment]
    drops: DropReport | None = Field(default=None, description="Cumulative for the run; None: nothing dropped.")


def upcast_system_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "version": 2, "drops": None}


System = SystemV2
