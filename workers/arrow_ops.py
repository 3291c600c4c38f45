"""Small Arrow table operations shared by the log reader and the projections (no I/O)."""

from __future__ import annotations

import pyarrow as pa


def first_per_key(table: pa.Table, key: list[str]) -> pa.Table:
    """Of each run of rows with equal `key` in an already sorted table, keep the first.

    Sort first so that the row that should win comes first in its run: this is how every dedupe here
    (by event_id, by epoch number) chooses its survivor.
    """
    if table.num_rows == 0:
        return table
    keys = list(zip(*(table.column(c).to_pylist() for c in key), strict=True))
    keep = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    return table.take(pa.array(keep, pa.int64())) if len(keep) != table.num_rows else table
