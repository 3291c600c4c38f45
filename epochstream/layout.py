"""Where everything lives under the data directory, and how files appear there atomically.

    log/<event_type>/seg-<utc>-p<partition>-<id>.parquet   immutable log segments (the truth)
    readmodel/CURRENT, readmodel/rm-<generation>.sqlite    the read model (`epochstream.readmodel`)
    snapshots/runs-<utc>-<id>.parquet                      the read model's runs, for SQL (`workers.snapshots`)
    epochstream.duckdb                                     the catalog: views over the log and the snapshots

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


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def log(self) -> Path:
        return self.root / "log"

    def log_dir(self, event_type: str) -> Path:
        return self.log / event_type

    @property
    def catalog(self) -> Path:
        return self.root / "epochstream.duckdb"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def fsync_dir(directory: Path) -> None:
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
        fsync_dir(path.parent)


def atomic_write_parquet(table: pa.Table, path: Path, *, fsync: bool = True, **options) -> None:
    """Write a Parquet file durably: temp name, fsync, rename. Hidden temp names keep globs off them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    options.setdefault("compression", "zstd")
    try:
        pq.write_table(table, tmp, **options)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written file once space comes back
        raise
    if fsync:
        fsync_dir(path.parent)
