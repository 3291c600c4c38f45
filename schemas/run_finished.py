"""`run_finished`: how a run ended. The error and traceback are kept whole, never truncated.

Version 2 adds `drops`: what the producer could not publish as given during the whole run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.drops import DropReport
from schemas.envelope import Envelope

RunStatus = Literal["completed", "failed", "interrupted"]


class RunFinishedV1(Envelope):
    type: Literal["run_finished"] = "run_finished"
    version: Literal[1] = 1
    status: RunStatus
    error: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    duration_s: float | None = Field(default=None, ge=0)


class RunFinishedV2(RunFinishedV1):
    version: Literal[2] = 2  # type: ignore[assignment]
    drops: DropReport | None = Field(default=None, description="Cumulative for the run; None: nothing dropped.")


def upcast_run_finished_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "version": 2, "drops": None}


RunFinished = RunFinishedV2
