"""Where the Parquet log's files live: a local directory or S3-compatible object storage, behind one seam.

Everything that reads or writes the log (drains, catch-up, compaction, rebuild, quarantine, recovery, the
catalog's seeds) goes through `log_store(layout)`, so the two backends differ here and nowhere else:

- **local** (`<data_dir>/log`, the default): a segment is written under a hidden temporary name, fsynced and
  renamed (`epochstream.atomic`); listing is a directory scan.
- **S3** (`EPOCHSTREAM_LOG_URL=s3://bucket/prefix`, endpoint and credentials from the standard AWS variables):
  a segment is serialised in memory and sent as one PUT of its unique name (no rename exists there; an
  object appears whole or not at all). A listing is a snapshot that may miss an object written a moment ago:
  a reader that misses a segment sees it next time, and every reader dedupes by (run_id, event_id) as it
  does for a local log, so a segment seen twice (compaction's merged file beside its not-yet-deleted parts)
  is counted once.

Files are named by `PurePath`s: a `Path` for the local store, a `PurePosixPath` `bucket/key` for S3 (no I/O
methods on it: nothing can touch an object but this module). Superseded markers (`.<name>.superseded`, see
`workers.compaction`) are empty files or objects beside their segment.

Errors: the S3 client (pyarrow, AWS SDK) raises a bare `OSError` for everything: a refused connection, a
timeout, access denied. Left alone, that would read as a damaged file (`workers.quarantine.is_damage`) or an
unknown failure. They are translated here, where they enter our code, into `LogStoreUnavailable` (transient:
the drain keeps the batch pending and retries it, never dead-letters it); a missing object stays
`FileNotFoundError`. Transport and parsing are separate steps (bytes are fetched, then parsed), so only
what the Parquet reader says about bytes it has in hand can count as damage.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from epochstream.errors import LogStoreUnavailable
from epochstream.layout import DataLayout, atomic_write_bytes, atomic_write_parquet, fsync_dir
from workers.fork_guard import no_fork

SUPERSEDED = ".superseded"
SEGMENTS = "seg-*.parquet"
__all__ = ["LocalLogStore", "LogFile", "LogStore", "LogStoreUnavailable", "S3LogStore", "log_store"]


@dataclass(frozen=True)
class LogFile:
    path: PurePath
    size: int
    mtime: float  # seconds since the Unix epoch (an object's LastModified)

    @property
    def name(self) -> str:
        return self.path.name


def superseded_marker(path: PurePath) -> PurePath:
    return path.with_name(f".{path.name}{SUPERSEDED}")


def s3_options(environ: Mapping[str, str]) -> dict:
    """pyarrow `S3FileSystem` keyword arguments from the standard AWS variables (pure). An http endpoint
    (MinIO, moto on loopback) needs `scheme="http"`; without AWS_ENDPOINT_URL, AWS itself is used."""
    # Delayed open: a file written in one piece is one PutObject. No background writes: the PUT happens in
    # the calling thread, inside its fork guard (`S3LogStore._calling`).
    options: dict = {"allow_delayed_open": True, "background_writes": False, "connect_timeout": 5.0,
                     "request_timeout": 30.0}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parts.netloc
        options["scheme"] = parts.scheme or "https"
    if environ.get("AWS_ACCESS_KEY_ID"):
        options["access_key"] = environ["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = environ.get("AWS_SECRET_ACCESS_KEY", "")
        if environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = environ["AWS_SESSION_TOKEN"]
    region = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
    if region:
        options["region"] = region
    return options


def fsspec_options(environ: Mapping[str, str]) -> dict:
    """`s3fs.S3FileSystem` keyword arguments for DuckDB (`duckdb.register_filesystem`), from the same
    variables (pure). No listing cache: a cached listing would hide segments written since."""
    options: dict = {"use_listings_cache": False, "skip_instance_cache": True}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    if environ.get("AWS_ACCESS_KEY_ID"):
        options["key"] = environ["AWS_ACCESS_KEY_ID"]
        options["secret"] = environ.get("AWS_SECRET_ACCESS_KEY", "")
    region = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


class LogStore:
    """The operations the log needs. Subclasses implement the primitives (`_scan`, `_fetch`, `_put`,
    `delete`, `move_out`); listing, markers and Parquet parsing are shared."""

    url: str  # where the log is, for messages and for the catalog

    def __init__(self, top: PurePath) -> None:
        self.top = top

    def dir(self, event_type: str) -> PurePath:
        return self.top / event_type

    # -- primitives -------------------------------------------------------------------------------------
    def _scan(self, directory: PurePath, stat: bool = True) -> list[LogFile]:
        """The plain files in `directory` (none if it does not exist). `stat=False`: sizes and times may be
        left 0 where finding them costs a call per file."""
        raise NotImplementedError

    def read_table(self, path: PurePath, columns: list[str] | None = None) -> pa.Table:
        raise NotImplementedError

    def read_schema(self, path: PurePath) -> pa.Schema:
        raise NotImplementedError

    def read_metadata(self, path: PurePath) -> pq.FileMetaData:
        raise NotImplementedError

    def write_parquet(self, table: pa.Table, path: PurePath, *, fsync: bool = True, **options) -> None:
        raise NotImplementedError

    def write_marker(self, path: PurePath) -> None:
        raise NotImplementedError

    def read_bytes(self, path: PurePath) -> bytes:
        raise NotImplementedError

    def write_bytes(self, path: PurePath, data: bytes) -> None:
        """A whole file as it is (`epochstream migrate` copies segments byte for byte)."""
        raise NotImplementedError

    def sync(self, directory: PurePath) -> None:
        """Make markers written in `directory` durable (local: one directory fsync; S3: a PUT already is)."""

    def exists(self, path: PurePath) -> bool:
        raise NotImplementedError

    def delete(self, path: PurePath) -> bool:
        """Remove a file; False if it was gone already."""
        raise NotImplementedError

    def move_out(self, path: PurePath, target: Path) -> bool:
        """Move a log file to the local `target` (quarantine); False if it was gone already."""
        raise NotImplementedError

    def sql_glob(self, layout: DataLayout, event_type: str) -> str:
        """What a DuckDB view reads for a type: relative to the data directory (local), or an s3:// glob."""
        raise NotImplementedError

    def describe(self, layout: DataLayout, path: PurePath) -> str:
        """A file as a person (and the quarantine sidecar) names it."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------------
    def files(self, event_type: str, pattern: str = SEGMENTS) -> list[LogFile]:
        """Every file of a type whose name matches (hidden ones never do), superseded or not, by name."""
        return sorted((f for f in self._scan(self.dir(event_type)) if fnmatch.fnmatchcase(f.name, pattern)),
                      key=lambda f: f.name)

    def markers(self, event_type: str) -> list[LogFile]:
        return [f for f in self._scan(self.dir(event_type))
                if f.name.startswith(".seg-") and f.name.endswith(f".parquet{SUPERSEDED}")]

    def superseded_names(self, event_type: str) -> set[str]:
        return {m.name[1:-len(SUPERSEDED)] for m in self.markers(event_type)}

    def live(self, event_type: str, pattern: str = SEGMENTS) -> list[PurePath]:
        """The live segments of a type (seeds, temporary and superseded files excluded), oldest name first.
        From one listing, so a segment and its marker are judged from the same snapshot."""
        listed = self._scan(self.dir(event_type), stat=False)
        gone = {f.name[1:-len(SUPERSEDED)] for f in listed if f.name.endswith(f".parquet{SUPERSEDED}")}
        return sorted((f.path for f in listed if fnmatch.fnmatchcase(f.name, pattern) and f.name not in gone),
                      key=lambda p: p.name)


class LocalLogStore(LogStore):
    """`<data_dir>/log`: what the log always was (temporary name, fsync, rename)."""

    def __init__(self, top: Path) -> None:
        super().__init__(top)
        self.url = str(top)

    def _scan(self, directory: PurePath, stat: bool = True) -> list[LogFile]:
        out = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return out
        for entry in entries:
            if not stat:
                out.append(LogFile(Path(entry.path), 0, 0.0))
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # compacted or quarantined meanwhile
                continue
            out.append(LogFile(Path(entry.path), st.st_size, st.st_mtime))
        return out

    def read_table(self, path: PurePath, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns)

    def read_schema(self, path: PurePath) -> pa.Schema:
        return pq.read_schema(path)

    def read_metadata(self, path: PurePath) -> pq.FileMetaData:
        return pq.read_metadata(path)

    def write_parquet(self, table: pa.Table, path: PurePath, *, fsync: bool = True, **options) -> None:
        atomic_write_parquet(table, Path(path), fsync=fsync, **options)

    def write_marker(self, path: PurePath) -> None:
        atomic_write_bytes(Path(path), b"", fsync=False)  # `sync` makes the directory durable once

    def sync(self, directory: PurePath) -> None:
        fsync_dir(Path(directory))

    def read_bytes(self, path: PurePath) -> bytes:
        return Path(path).read_bytes()

    def write_bytes(self, path: PurePath, data: bytes) -> None:
        atomic_write_bytes(Path(path), data)

    def exists(self, path: PurePath) -> bool:
        return Path(path).exists()

    def delete(self, path: PurePath) -> bool:
        try:
            Path(path).unlink()
        except FileNotFoundError:
            return False
        return True

    def move_out(self, path: PurePath, target: Path) -> bool:
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return False
        return True

    def sql_glob(self, layout: DataLayout, event_type: str) -> str:
        return layout.relative(Path(self.dir(event_type)) / "*.parquet")

    def describe(self, layout: DataLayout, path: PurePath) -> str:
        return layout.relative(Path(path))


class S3LogStore(LogStore):
    """`s3://bucket/prefix`: one PUT per file, listings by prefix, errors translated (module docstring)."""

    def __init__(self, url: str, top: PurePosixPath, fs: pafs.S3FileSystem) -> None:
        super().__init__(top)
        self.url = url.rstrip("/")
        self.fs = fs

    @contextlib.contextmanager
    def _calling(self, what: str, path: PurePath) -> Iterator[None]:
        """The one place the S3 client's errors become ours (see the module docstring). Every call holds off
        `os.fork` (`workers.fork_guard`): a worker's scheduler thread reads the log while RQ forks work horses,
        and a horse forked in the middle of an AWS SDK call inherited its locks held and hung in its first
        request (seen in tests/integration/test_s3_outage.py)."""
        try:
            with no_fork():
                yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise LogStoreUnavailable(
                f"the log's object store failed to {what} s3://{path} ({exc}); check that the endpoint "
                "(AWS_ENDPOINT_URL) is up and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) may "
                "read and write the bucket; the work stays pending and is retried") from exc

    def _scan(self, directory: PurePath, stat: bool = True) -> list[LogFile]:
        with self._calling("list", directory):
            infos = self.fs.get_file_info(pafs.FileSelector(str(directory), allow_not_found=True))
        return [LogFile(PurePosixPath(i.path), i.size or 0, i.mtime.timestamp() if i.mtime else 0.0)
                for i in infos if i.type == pafs.FileType.File]

    def _fetch(self, path: PurePath) -> pa.Buffer:
        with self._calling("read", path), self.fs.open_input_file(str(path)) as f:
            return f.read_buffer()

    def read_table(self, path: PurePath, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(self._fetch(path)), columns=columns)

    def read_schema(self, path: PurePath) -> pa.Schema:
        return pq.read_schema(pa.BufferReader(self._fetch(path)))

    def read_metadata(self, path: PurePath) -> pq.FileMetaData:
        return pq.read_metadata(pa.BufferReader(self._fetch(path)))

    def _put(self, path: PurePath, data: pa.Buffer | bytes) -> None:
        # allow_delayed_open + one write of the whole file: a single PutObject, not a multipart upload.
        with self._calling("write", path), self.fs.open_output_stream(str(path)) as out:
            out.write(data)

    def write_parquet(self, table: pa.Table, path: PurePath, *, fsync: bool = True, **options) -> None:
        options.setdefault("compression", "zstd")
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)  # in memory first: a failed serialisation sends nothing
        self._put(path, sink.getvalue())

    def write_marker(self, path: PurePath) -> None:
        self._put(path, b"")

    def read_bytes(self, path: PurePath) -> bytes:
        return self._fetch(path).to_pybytes()

    def write_bytes(self, path: PurePath, data: bytes) -> None:
        self._put(path, data)

    def exists(self, path: PurePath) -> bool:
        with self._calling("look up", path):
            return self.fs.get_file_info(str(path)).type == pafs.FileType.File

    def delete(self, path: PurePath) -> bool:
        if not self.exists(path):
            return False
        with self._calling("delete", path):
            try:
                self.fs.delete_file(str(path))
            except FileNotFoundError:
                return False
        return True

    def move_out(self, path: PurePath, target: Path) -> bool:
        try:
            data = self._fetch(path)
        except FileNotFoundError:
            return False
        atomic_write_bytes(target, data.to_pybytes())  # the local copy is durable before the object goes
        return self.delete(path)

    def sql_glob(self, layout: DataLayout, event_type: str) -> str:
        return f"s3://{self.dir(event_type)}/*.parquet"

    def describe(self, layout: DataLayout, path: PurePath) -> str:
        return f"s3://{path}"


@functools.lru_cache(maxsize=16)
def _s3_store(url: str, pid: int, options: tuple) -> S3LogStore:
    # Keyed by pid: the AWS SDK's connections must not cross a fork (RQ forks a work horse per job).
    del pid
    from epochstream.layout import s3_location

    with no_fork():  # the first one initialises the AWS SDK
        return S3LogStore(url, s3_location(url), pafs.S3FileSystem(**dict(options)))


def log_store(layout: DataLayout, environ: Mapping[str, str] | None = None) -> LogStore:
    """The store of `layout`'s log (`DataLayout.of(settings)`); the S3 client is made once per process."""
    if layout.log_is_local:
        return LocalLogStore(Path(layout.log))
    options = s3_options(os.environ if environ is None else environ)
    return _s3_store(layout.log_url, os.getpid(), tuple(sorted(options.items())))
