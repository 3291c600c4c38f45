"""A run's trend verdict, judged from its stored fold state when it is read, not in every drain batch.

The verdict is a pure function of the fold state, the run's status and error, and what it monitors, so
judging it on read (once per version, cached by the API; once per snapshot for SQL) gives exactly what
judging it on write would, at a fraction of the drain's cost: the drain keeps only the fold state and
the cheap fields it sorts by (best value and epoch, final loss). A state stored by an older version of
the trend functions is folded again from the run's epochs (`history`) until its next batch replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import TrendState, fold, verdict_fields


def trends(summary: dict[str, Any], state_document: dict[str, Any] | None, status: str | None = None,
           history: Callable[[], Sequence[EpochRow]] | None = None) -> dict:
    """The TrendFlags fields of a run as stored (`status`: the read-time one, e.g. `stale`)."""
    config = TrendConfig(*summary.get("trend_config", [None] * 4))
    state = TrendState.from_dict(state_document)
    if state is None:
        state = fold(None, history() if history is not None and summary.get("epochs") else [], config)
    status = status or summary.get("status")
    seen = summary.get("last_seen")
    silent = datetime.fromisoformat(seen) if status == "stale" and seen else None
    return verdict_fields(state, config, status=status, error=summary.get("error"), silent_since=silent)
