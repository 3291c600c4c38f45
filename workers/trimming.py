"""Stream trimming: XTRIM MINID below the oldest entry any group still needs, never plain MAXLEN.

An entry is still needed while some group has it pending (delivered, not acknowledged) or has not
delivered it yet (after the group's last-delivered-id). Everything older is in the Parquet log already.
"""

from __future__ import annotations

import redis


def next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (ms-seq)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def oldest_needed(groups: list[tuple[str, str | None]]) -> str | None:
    """Pure: from (last_delivered_id, oldest_pending_id or None) per group, the trim boundary (MINID).

    None when there is no group: nobody has read the stream, so nothing may go.
    """
    if not groups:
        return None
    bounds = [pending if pending is not None else next_id(delivered) for delivered, pending in groups]
    return min(bounds, key=_id_key)


def trim_stream(client: redis.Redis, stream: str) -> int:
    """Trim one stream below what every group still needs; returns the number of entries removed."""
    try:
        infos = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        return 0
    groups = []
    for info in infos:
        name = info["name"]
        pending = None
        if info["pending"]:
            summary = client.xpending(stream, name)
            pending = summary["min"].decode() if isinstance(summary["min"], bytes) else summary["min"]
        delivered = info["last-delivered-id"]
        groups.append((delivered.decode() if isinstance(delivered, bytes) else delivered, pending))
    boundary = oldest_needed(groups)
    if boundary is None:
        return 0
    return client.xtrim(stream, minid=boundary, approximate=False)
