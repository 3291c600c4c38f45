"""Where everything lives under the data directory, and how files appear there atomically.

    log/<event_type>/seg-<utc>-p<partition>-<id>-s<last id>.parquet   immutable log segments (the truth)
    readmodel/CURRENT, readmodel/rm-<generation>.sqlite    the read model (`epochstream.readmodel`)
    snapshots/runs-<utc>-<id>.parquet                      the read model's runs, for SQL (`workers.snapshots`)
    quarantine/<event_type>/<segment>[.json]               unreadable segments moved aside, each with its
                                                           reason and what was recovered (`workers.quarantine`)
    maintenance.lock                                       held (flock) by `compact` and `rebuild`
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

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def maintenance_lock(self) -> Path:
        return self.root / "maintenance.lock"

    def relative(self, path: Path) -> str:
        """`path` as the catalog names it: relative to the data directory, so a moved copy still resolves."""
        return path.relative_to(self.root).as_posix()


TMP_SUFFIX = ".tmp"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


def is_tmp_of(candidate: Path, final_name: str) -> bool:
    """Whether `candidate` is a temporary file of `atomic_write_*(..., <dir>/final_name)`."""
    return candidate.name.startswith(f".{final_name}.") and candidate.name.endswith(TMP_SUFFIX)


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
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a kill mid-write leaves no half file behind
        raise
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
        tmp.unlink(missing_ok=True)  # a full disk or an error mid-write leaves no half file behind
        raise
    if fsync:
        fsync_dir(path.parent)
