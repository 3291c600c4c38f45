"""Where everything lives under the data directory, and how files appear there atomically.

    log/<event_type>/seg-<utc>-p<partition>-<id>-s<last id>.parquet   immutable log segments (the truth); with
                                                           EPOCHSTREAM_LOG_URL=s3://bucket/prefix they live
                                                           at <prefix>/<event_type>/ there instead
                                                           (`workers.log_store`)
    readmodel/CURRENT, readmodel/rm-<generation>.sqlite    the read model (`epochstream.readmodel`)
    snapshots/runs-<utc>-<id>.parquet                      the read model's runs, for SQL (`workers.snapshots`)
    quarantine/<event_type>/<segment>[.json]               unreadable segments moved aside, each with its
                                                           reason and what was recovered (`workers.quarantine`)
    maintenance.lock                                       held (flock) by `compact` and `rebuild`
    epochstream.duckdb                                     the catalog: views over the log and the snapshots

Every file is written under a temporary name in the same directory and renamed, so a reader sees the
old file or the new one, never half of one (`epochstream.atomic`); on object storage a segment is one PUT
of a unique name instead (`workers.log_store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from epochstream.atomic import TMP_SUFFIX, atomic_write, atomic_write_bytes, fsync_dir, is_tmp_of

if TYPE_CHECKING:
    import pyarrow as pa

    from epochstream.settings import Settings

__all__ = ["TMP_SUFFIX", "DataLayout", "atomic_write_bytes", "atomic_write_parquet", "fsync_dir", "is_tmp_of",
           "s3_location"]
S3_SCHEME = "s3://"


def s3_location(url: str) -> PurePosixPath:
    """`s3://bucket/prefix` as the object path pyarrow's S3 filesystem names it: `bucket/prefix` (pure)."""
    rest = url[len(S3_SCHEME):] if url.startswith(S3_SCHEME) else ""
    if not rest.split("/", 1)[0]:
        raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
    return PurePosixPath(rest.rstrip("/"))


@dataclass(frozen=True)
class DataLayout:
    """`root`: the local data directory. `log_url`: where the log lives: empty for `root/log`, or
    `s3://bucket/prefix` (EPOCHSTREAM_LOG_URL); everything else stays under `root` on every host."""

    root: Path
    log_url: str = ""

    @classmethod
    def of(cls, settings: Settings) -> DataLayout:
        return cls(settings.data_dir, settings.log_url)

    @property
    def log_is_local(self) -> bool:
        return not self.log_url

    @property
    def log(self) -> PurePath:
        """The log's top: a local directory (a `Path`), or the S3 object prefix `bucket/prefix` (a
        `PurePosixPath`: no I/O methods, so nothing can touch it but `workers.log_store`)."""
        return self.root / "log" if self.log_is_local else s3_location(self.log_url)

    def log_dir(self, event_type: str) -> PurePath:
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
