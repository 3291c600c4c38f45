"""Which event types and versions exist, and how each old version becomes the current one.

Upcasters work on raw dicts and are applied in a loop (v1 -> v2 -> ... -> current), so adding a version
means adding one model and one `upcast_<type>_v<n>_v<n+1>` function, never editing old ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from schemas.epoch import EpochV1, EpochV2, upcast_epoch_v1_v2
from schemas.run_config import RunConfigV1
from schemas.run_finished import RunFinishedV1, RunFinishedV2, upcast_run_finished_v1_v2
from schemas.run_started import RunStartedV1, RunStartedV2, upcast_run_started_v1_v2
from schemas.step import StepV1
from schemas.system import SystemV1, SystemV2, upcast_system_v1_v2

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

MODELS: dict[str, dict[int, type[BaseModel]]] = {
    "run_started": {1: RunStartedV1, 2: RunStartedV2},
    "epoch": {1: EpochV1, 2: EpochV2},
    "step": {1: StepV1},
    "system": {1: SystemV1, 2: SystemV2},
    "run_config": {1: RunConfigV1},
    "run_finished": {1: RunFinishedV1, 2: RunFinishedV2},
}

UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("epoch", 1): upcast_epoch_v1_v2,
    ("run_started", 1): upcast_run_started_v1_v2,
    ("system", 1): upcast_system_v1_v2,
    ("run_finished", 1): upcast_run_finished_v1_v2,
}

CURRENT_VERSION: dict[str, int] = {name: max(versions) for name, versions in MODELS.items()}

# The current version of each type.
Event = RunStartedV2 | EpochV2 | StepV1 | SystemV2 | RunConfigV1 | RunFinishedV2


def upcast(event_type: str, version: int, raw: dict[str, Any]) -> dict[str, Any]:
    """Apply the upcasters from `version` up to the current one."""
    while version < CURRENT_VERSION[event_type]:
        raw = UPCASTERS[(event_type, version)](raw)
        version += 1
    return raw
