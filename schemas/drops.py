"""What a producer could not publish as given, reported with the run so nothing disappears unseen.

A `DropReport` is cumulative for the run: each report carries every count so far, so the newest one (by
`seq`) is the whole story. It travels in `system` events (the heartbeat) and in `run_finished`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DropKind = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]
MAX_EXAMPLES = 20


class DropReport(BaseModel):
    """Counts per kind (e.g. `renamed`, `not_a_number`, `missing`, `queue_full`) and a few examples in words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    counts: dict[DropKind, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=64)
    examples: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=MAX_EXAMPLES,
        description="Human-readable, e.g. \"'acc@1' renamed to 'acc_1'\" (the first few of each kind).")
