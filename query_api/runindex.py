"""The run listing: rows of the runs index, sorted once, filtered and paged per request. Pure: no I/O.

Rows are dicts with the index columns (run_id, project, status, started_at, last_seen, ...). The sort
key is (started_at, or last_seen when run_started has not arrived, as UTC ISO text; run_id): newest first
means descending by it. `stale` is not stored: it is decided at read time from last_seen and the
heartbeat, so status filters on `running`/`stale` check each candidate with `effective_status`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from query_api.paging import SortKey, walk
from schemas.read_models import RunSummary, effective_status

DYNAMIC_STATUSES = ("running", "stale")


def as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def sort_key(row: Mapping[str, Any]) -> SortKey:
    when = as_utc(row.get("started_at")) or as_utc(row.get("last_seen"))
    return (when.isoformat() if when else "", str(row["run_id"]))


def row_status(row: Mapping[str, Any], now: datetime) -> str:
    """The status a reader should see for an index row (or a summary dict)."""
    status = row.get("status") or "running"
    if status != "running":
        return status
    probe = RunSummary.model_construct(status="running", last_seen=as_utc(row.get("last_seen")),
                                       heartbeat_s=row.get("heartbeat_s"))
    return effective_status(probe, now)


@dataclass
class RunIndex:
    rows: list[dict[str, Any]]  # ascending by sort key
    keys: list[SortKey]
    groups: dict[tuple[str, str], tuple[list[int], list[SortKey]]] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, Any]],
              item: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> RunIndex:
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:  # a run appears once; if two partitions disagree, the higher version wins
            run_id = str(row["run_id"])
            if run_id not in latest or (row.get("version") or 0) > (latest[run_id].get("version") or 0):
                latest[run_id] = dict(row)
        ordered = sorted(latest.values(), key=sort_key)
        if item is not None:  # the public form of each row, made once per index version, not per request
            for row in ordered:
                row["_item"] = item(row)
        index = cls(ordered, [sort_key(r) for r in ordered])
        for pos, row in enumerate(ordered):
            status = row.get("status") or "running"
            for group in (("project", str(row.get("project"))), ("status", status)):
                positions, keys = index.groups.setdefault(group, ([], []))
                positions.append(pos)
                keys.append(index.keys[pos])
        return index

    def select(self, *, limit: int, after: SortKey | None = None, project: str | None = None,
               status: str | None = None, now: datetime) -> tuple[list[dict[str, Any]], SortKey | None]:
        """One page newest first, and the cursor key of the next page (None at the end)."""
        stored_status = "running" if status in DYNAMIC_STATUSES else status
        if project is not None:
            positions, keys = self.groups.get(("project", project), ([], []))
        elif stored_status is not None:
            positions, keys = self.groups.get(("status", stored_status), ([], []))
        else:
            positions, keys = range(len(self.rows)), self.keys
        accept: Callable[[int], bool] | None = None
        if status is not None:
            def accept(i: int) -> bool:
                row = self.rows[positions[i]]
                if status in DYNAMIC_STATUSES:
                    return row_status(row, now) == status
                return (row.get("status") or "running") == status
        found, next_key = walk(keys, limit, after, accept)
        return [self.rows[positions[i]] for i in found], next_key
