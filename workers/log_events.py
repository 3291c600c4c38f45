"""Log rows back into events, for `rebuild` and for catching the read model up with the log.

The rows were validated when they were first drained, so the models are rebuilt without validating
again (`model_construct`): a million step rows replay in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from epochstream.readmodel.values import config_from_json
from schemas.drops import DropReport
from schemas.registry import CURRENT_VERSION, MODELS
from schemas.system import GpuSample

CHUNK_ROWS = 10_000


def _event(event_type: str, row: dict[str, Any]) -> Any:
    model = MODELS[event_type][CURRENT_VERSION[event_type]]
    row.pop("ingested_at", None)
    row.pop("stream_id", None)
    if "metrics" in row:
        row["metrics"] = dict(row["metrics"] or [])
    if "config" in row:
        row["config"] = config_from_json(row["config"])
    if "drops" in row:
        drops = row["drops"]
        row["drops"] = None if drops is None else DropReport.model_construct(
            counts=dict(drops["counts"] or []), examples=list(drops["examples"] or []))
    if "gpus" in row:
        row["gpus"] = [GpuSample.model_construct(**gpu) for gpu in row["gpus"] or []]
    if event_type == "run_started":
        row["resume"] = bool(row.get("resume"))
    if event_type == "epoch":
        row["warnings"] = list(row.get("warnings") or [])
    return model.model_construct(**row)


def events_of(event_type: str, table: pa.Table) -> Iterator[list[tuple[str, Any, datetime]]]:
    """(stream id, event, ingested_at) of every row, in chunks."""
    for batch in table.to_batches(CHUNK_ROWS):
        out = []
        for row in batch.to_pylist():
            stream_id, ingested_at = row["stream_id"], row["ingested_at"]
            out.append((stream_id, _event(event_type, row), ingested_at))
        yield out
