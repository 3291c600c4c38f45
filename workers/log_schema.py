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

DROPS_STRUCT = pa.struct([("counts", pa.map_(pa.string(), pa.int64())), ("examples", pa.list_(pa.string()))])

# Columns are only ever added (new event versions): a segment written before a column existed reads it as
# null (`conform`), and DuckDB's `union_by_name` does the same.
BODY_FIELDS: dict[str, list[pa.Field]] = {
    "run_started": [
        pa.field("project", pa.string()), pa.field("name", pa.string()), pa.field("config", pa.string()),
        pa.field("tags", pa.list_(pa.string())), pa.field("python_version", pa.string()),
        pa.field("torch_version", pa.string()), pa.field("cuda_version", pa.string()),
        pa.field("heartbeat_s", pa.float64()), pa.field("monitor", pa.string()), pa.field("mode", pa.string()),
        pa.field("patience", pa.int64()), pa.field("min_delta", pa.float64()), pa.field("resume", pa.bool_()),
    ],
    "epoch": [
        pa.field("epoch", pa.int64()), pa.field("samples", pa.int64()),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())), pa.field("warnings", pa.list_(pa.string())),
    ],
    "step": [
        pa.field("step", pa.int64()), pa.field("epoch", pa.int64()),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())),
    ],
    "system": [
        pa.field("gpus", pa.list_(GPU_STRUCT)), pa.field("cpu_percent", pa.float64()),
        pa.field("rss_mb", pa.float64()), pa.field("drops", DROPS_STRUCT),
    ],
    "run_config": [pa.field("config", pa.string())],
    "run_finished": [
        pa.field("status", pa.string()), pa.field("error", pa.string()), pa.field("traceback", pa.string()),
        pa.field("exit_code", pa.int64()), pa.field("duration_s", pa.float64()), pa.field("drops", DROPS_STRUCT),
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


def config_json(config: dict) -> str:
    """Hyper-parameters as JSON text. orjson stops at 255 levels of nesting; Python's json goes deeper (the
    codec accepted the event, so it can be written), and no config is ever refused here."""
    try:
        return orjson.dumps(config, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except orjson.JSONEncodeError:
        import json

        return json.dumps(config, default=str)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A segment read back in the type's current schema: columns added since it was written become null."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _drops(drops) -> dict | None:
    return None if drops is None else {"counts": drops.counts, "examples": drops.examples}


# Columns that are not the event's own field as it is: how to make them from the events of one type.
_DERIVED = {
    "config": lambda events: [config_json(e.config) for e in events],
    "gpus": lambda events: [[gpu.__dict__ for gpu in e.gpus] for e in events],
    "drops": lambda events: [_drops(e.drops) for e in events],
    "metrics": lambda events: metrics_array([e.metrics for e in events]),
}


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
    """Group decoded (stream_id, event) pairs by type into one Arrow table each.

    Columns are read straight off the validated models (`__dict__`, no per-row dict or model_dump): a
    drained batch of thousands of events spends most of its Arrow time here."""
    grouped: dict[str, list[tuple[str, Event]]] = defaultdict(list)
    for stream_id, event in entries:
        grouped[event.type].append((stream_id, event))
    tables = {}
    for name, pairs in grouped.items():
        schema = SCHEMAS[name]
        events = [e for _, e in pairs]
        columns: dict[str, object] = {}
        for f in schema:
            if f.name == "stream_id":
                columns[f.name] = [sid for sid, _ in pairs]
            elif f.name == "ingested_at":
                columns[f.name] = [ingested_at] * len(events)
            elif f.name in _DERIVED:
                columns[f.name] = _DERIVED[f.name](events)
            else:
                columns[f.name] = [e.__dict__.get(f.name) for e in events]
        tables[name] = pa.Table.from_pydict(columns, schema=schema)
    return tables


def epoch_metrics(table: pa.Table) -> Sequence[dict[str, float]]:
    return [dict(m) for m in table.column("metrics").to_pylist()]
