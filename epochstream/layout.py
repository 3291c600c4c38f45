"""Where everything lives under the data directory, and how files appear there atomically.

    log/<event_type>/seg-<utc>-p<partition>-<id>-s<last id>.parquet   immutable log segments (the truth)
    readmodel/CURRENT, readmodel/rm-<generation>.sqlite    the read model (`epochstream.readmodel`)
    snapshots/runs-<utc>-<id>.parquet                      the read model's runs, for SQL (`workers.snapshots`)
    quarantine/<event_type>/<segment>[.json]               unreadable segments moved aside, each with its
                                                           reason and what was recovered (`workers.quarantine`)
    maintenance.lock                                       held (flock) by `compact` and `rebuild`
    epochstream.duckdb                                     the catalog: views over the log and the snapshots

Every file is written under a temporary name in the same directory and renamed, so a reader sees the
old file or the new one, never half of one (`epochstream.atomic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from epochstream.atomic import TMP_SUFFIX, atomic_write, atomic_write_bytes, fsync_dir, is_tmp_of

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TMP_SUFFIX", "DataLayout", "atomic_write_bytes", "atomic_write_parquet", "fsync_dir", "is_tmp_of"]


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




def atomic_write_parquet(table: pa.Table, path: Path, *, fsync: bool = True, **options) -> None:
    """Write a Parquet file durably (`epochstream.atomic.atomic_write`): temp name, fsync, rename."""
    import pyarrow.parquet as pq

    options.setdefault("compression", "zstd")
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, **options), fsync=fsync)
