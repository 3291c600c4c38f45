"""A run's drops in words, for `epochstream analyze` and the runs table. Pure, no I/O.

The API sends `drops: {"counts": {kind: n}, "examples": [...]}` and `dropped` (every kind but `renamed`)
with a run; the kinds are documented in `producer/drops.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEPT = ("renamed",)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def drops_lines(summary: Mapping[str, Any]) -> list[str]:
    """A headline ("2 values dropped, 1 renamed (missing 1, ...)") and the examples; [] when nothing was."""
    report = summary.get("drops") or {}
    counts = {str(k): int(v) for k, v in (report.get("counts") or {}).items() if v}
    if not counts:
        return []
    dropped = summary.get("dropped")
    if not isinstance(dropped, int):
        dropped = sum(n for kind, n in counts.items() if kind not in KEPT)
    renamed = sum(counts.get(kind, 0) for kind in KEPT)
    head = _plural(dropped, "value") + " dropped" + (f", {renamed} renamed" if renamed else "")
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    return [f"{head} ({by_kind})", *[str(e) for e in report.get("examples") or []]]


def with_drops(cell: str, row: Mapping[str, Any]) -> str:
    """A runs-table cell with "N dropped" added when the run lost values or events."""
    dropped = row.get("dropped")
    if not isinstance(dropped, int) or dropped <= 0:
        return cell
    text = f"{dropped} dropped"
    return text if cell in ("", "-") else f"{cell}, {text}"
