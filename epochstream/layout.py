"""Where everything lives under the data directory, and how files appear there atomically.

    log/<event_type>/seg-<utc>-<id>.parquet   immutable log segments (the truth)
    projections/runs/<run_id>/epochs.parquet  per-run epoch history (deduplicated, ordered by epoch)
    projections/runs/<run_id>/system.parquet  per-run system series
    projections/runs/<run_id>/summary.json    per-run summary (status, config, error, best epoch, flags)
    projections/index/runs-<partition>.parquet  one row per run of that partition, for listings
    epochstream.duckdb                        the catalog: views over all of the above

Every file is written under a temporary name in the same directory and renamed, so a reader sees the
old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

EVENT_TYPES = ("run_started", "epoch", "system", "run_finished")


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def log(self) -> Path:
        return self.root / "log"

    def log_dir(self, event_type: str) -> Path:
        return self.log / event_type

    @property
    def projections(self) -> Path:
        return self.root / "projections"

    def run_dir(self, run_id: str) -> Path:
        return self.projections / "runs" / run_id

    def run_epochs(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "epochs.parquet"

    def run_system(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "system.parquet"

    def run_summary(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "summary.json"

    @property
    def index_dir(self) -> Path:
        return self.projections / "index"

    def runs_index(self, partition: int) -> Path:
        return self.index_dir / f"runs-{partition}.parquet"

    @property
    def catalog(self) -> Path:
        return self.root / "epochstream.duckdb"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: without this a power loss can undo it after the entry was already XACKed."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_parquet(table: pa.Table, path: Path, *, fsync: bool = True, **options) -> None:
    """Write a Parquet file durably: temp name, fsync, rename. Hidden temp names keep globs off them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    options.setdefault("compression", "zstd")
    pq.write_table(table, tmp, **options)
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)
