"""A run's trend verdict, judged from its stored fold state when it is read, not in every drain batch.

The verdict is a pure function of the fold state, the run's status and error, and what it monitors, so
judging it on read (once per version, cached by the API; once per snapshot for SQL) gives exactly what
judging it on write would, at a fraction of the drain's cost: the drain keeps only the fold state and
the cheap fields it sorts by (best value and epoch, final loss).
"""

from __future__ import annotations

from typing import Any

from schemas.trend_rules import TrendConfig
from schemas.trend_state import TrendState, fold, verdict_fields


def trends(summary: dict[str, Any], state_document: dict[str, Any] | None, status: str | None = None) -> dict:
    """The TrendFlags fields of a run as stored (`status`: the read-time one, e.g. `stale`)."""
    config = TrendConfig(*summary.get("trend_config", [None] * 4))
    state = TrendState.from_dict(state_document) or fold(None, [], config)
    return verdict_fields(state, config, status=status or summary.get("status"), error=summary.get("error"))
