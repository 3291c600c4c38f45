"""The Arrow schema of each event type's log segments, and events -> Arrow tables (no I/O).

Columns are typed so analysts can query the Parquet with any engine; `config` stays JSON text because
hyper-parameters have no fixed shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import orjson
import pyarrow as pa

from schemas.registry import Event

ENVELOPE_FIELDS = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("host", pa.string()),
    pa.field("pid", pa.int64()),
    pa.field("stream_id", pa.string(), nullable=False),
    pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
]

GPU_STRUCT = pa.struct([
    ("index", pa.int32()), ("name", pa.string()), ("mem_allocated_mb", pa.float64()),
    ("mem_reserved_mb", pa.float64()), ("mem_peak_mb", pa.float64()), ("mem_total_mb", pa.float64()),
    ("utilization_pct", pa.float64()),
])

BODY_FIELDS: dict[str, list[pa.Field]] = {
    "run_started": [
        pa.field("project", pa.string()), pa.field("name", pa.string()), pa.field("config", pa.string()),
        pa.field("tags", pa.list_(pa.string())), pa.field("python_version", pa.string()),
        pa.field("torch_version", pa.string()), pa.field("cuda_version", pa.string()),
        pa.field("heartbeat_s", pa.float64()),
    ],
    "epoch": [
        pa.field("epoch", pa.int64()), pa.field("samples", pa.int64()),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())), pa.field("warnings", pa.list_(pa.string())),
    ],
    "system": [
        pa.field("gpus", pa.list_(GPU_STRUCT)), pa.field("cpu_percent", pa.float64()),
        pa.field("rss_mb", pa.float64()),
    ],
    "run_finished": [
        pa.field("status", pa.string()), pa.field("error", pa.string()), pa.field("traceback", pa.string()),
        pa.field("exit_code", pa.int64()), pa.field("duration_s", pa.float64()),
    ],
}

SCHEMAS: dict[str, pa.Schema] = {name: pa.schema(ENVELOPE_FIELDS + body) for name, body in BODY_FIELDS.items()}

# Dead letters are kept in the log too (log/dead_letters/), so they are queryable with the events.
DEAD_LETTERS = "dead_letters"
DEAD_LETTER_SCHEMA = pa.schema([
    pa.field("stream", pa.string(), nullable=False), pa.field("stream_id", pa.string(), nullable=False),
    pa.field("partition", pa.int32()), pa.field("reason", pa.string(), nullable=False),
    pa.field("payload", pa.binary()), pa.field("deliveries", pa.int64()),
    pa.field("dead_lettered_at", pa.timestamp("us", tz="UTC"), nullable=False),
])
LOG_SCHEMAS: dict[str, pa.Schema] = {**SCHEMAS, DEAD_LETTERS: DEAD_LETTER_SCHEMA}


def dead_letter_table(rows: Sequence[dict]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=DEAD_LETTER_SCHEMA)


def event_row(event: Event, stream_id: str, ingested_at) -> dict:
    # The validated model's own field dict: a full model_dump per event costs more than the rest of the row.
    row = dict(event.__dict__)
    del row["type"], row["version"]
    if event.type == "run_started":
        row["config"] = orjson.dumps(row["config"], option=orjson.OPT_SERIALIZE_NUMPY).decode()
    elif event.type == "system":
        row["gpus"] = [gpu.__dict__ for gpu in row["gpus"]]
    row["stream_id"] = stream_id
    row["ingested_at"] = ingested_at
    return row


METRICS_TYPE = pa.map_(pa.string(), pa.float64())


def metrics_array(maps: list[dict[str, float]]) -> pa.Array:
    """A map<string,double> column built from flat keys/values/offsets: far cheaper than from dict items."""
    offsets, keys, values = [0], [], []
    for metrics in maps:
        keys.extend(metrics)
        values.extend(metrics.values())
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, pa.string()),
                                   pa.array(values, pa.float64()), type=METRICS_TYPE)


def tables_by_type(entries: Iterable[tuple[str, Event]], ingested_at) -> dict[str, pa.Table]:
    """Group decoded (stream_id, event) pairs by type into one Arrow table each."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for stream_id, event in entries:
        rows[event.type].append(event_row(event, stream_id, ingested_at))
    tables = {}
    for name, batch in rows.items():
        schema = SCHEMAS[name]
        columns = {f.name: [row.get(f.name) for row in batch] for f in schema}
        if name == "epoch":
            columns["metrics"] = metrics_array(columns["metrics"])
        tables[name] = pa.Table.from_pydict(columns, schema=schema)
    return tables


def epoch_metrics(table: pa.Table) -> Sequence[dict[str, float]]:
    return [dict(m) for m in table.column("metrics").to_pylist()]
