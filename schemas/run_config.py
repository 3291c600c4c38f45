"""`run_config`: hyper-parameters that arrive after the run started (Lightning's `log_hyperparams`, a
Hugging Face model config). Merged into the run's config key by key, later `seq` winning."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Envelope


class RunConfigV1(Envelope):
    type: Literal["run_config"] = "run_config"
    version: Literal[1] = 1
    config: dict[str, Any] = Field(default_factory=dict, description="Top-level keys replace the run's ones.")


RunConfig = RunConfigV1
