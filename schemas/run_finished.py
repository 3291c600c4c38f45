"""`run_finished`: how a run ended. The error and traceback are kept whole, never truncated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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


RunFinished = RunFinishedV1
