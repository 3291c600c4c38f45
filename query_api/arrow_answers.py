"""History answers as Arrow IPC streams (`?format=arrow`): big histories without JSON, NaN/inf as they are.

One long table per answer: `run_id`, `epoch` (or `step`), `metric` (dictionary-encoded), `value`
(float64: a NaN or infinite value is sent as itself; Arrow carries it). The rows are the ones the JSON
answer holds, in the same order, so the two formats always agree. No I/O and no web framework here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
_NON_FINITE = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}


def schema(key: str) -> pa.Schema:
    return pa.schema([("run_id", pa.dictionary(pa.int32(), pa.string())), (key, pa.int64()),
                      ("metric", pa.dictionary(pa.int32(), pa.string())), ("value", pa.float64())])


def long_table(run_id: str, key: str, rows: Iterable[tuple[int, Mapping[str, float | None]]]) -> pa.Table:
    keys: list[int] = []
    metrics: list[str] = []
    values: list[float | None] = []
    for number, row in rows:
        for name, value in row.items():
            keys.append(number)
            metrics.append(name)
            values.append(value)
    out = schema(key)
    columns = [pa.array([run_id] * len(keys), pa.string()).dictionary_encode(), pa.array(keys, pa.int64()),
               pa.array(metrics, pa.string()).dictionary_encode(), pa.array(values, pa.float64())]
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, out, strict=True)], schema=out)


def restored(item: Mapping[str, Any]) -> dict[str, float | None]:
    """A JSON item's metrics with every null that stood for a NaN or infinity put back."""
    values = dict(item["metrics"])
    for name, marker in (item.get("non_finite") or {}).items():
        values[name] = _NON_FINITE[marker]
    return values


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def epochs_arrow(run_id: str, body: Mapping[str, Any]) -> bytes:
    return ipc_bytes(long_table(run_id, "epoch", ((e["epoch"], restored(e)) for e in body["epochs"])))


def steps_arrow(run_id: str, body: Mapping[str, Any]) -> bytes:
    return ipc_bytes(long_table(run_id, "step", ((s["step"], restored(s)) for s in body["steps"])))
