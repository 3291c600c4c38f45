"""Rebuild: replay the whole log into a fresh read model, then swap it in atomically.

The read model is a function of each run's event *set* (see `epochstream.readmodel.plan`), so the result
equals the incremental one, whatever state the old database is in: the old one is never read, only the
log. Segments are replayed in name order (the order drains wrote them) so almost every run takes the
append path. The new database is built under a name no reader looks at (`building-<generation>.sqlite`,
unsynced: a crash means starting over), switched to WAL, renamed to its final name while nothing has it
open, and only then named in `readmodel/CURRENT`: a poller reads the old database until that instant and
the new, complete one after it. A failed rebuild removes what it built. Run it with the drains paused
(the CLI holds every partition's drain lock).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from epochstream.layout import DataLayout, fsync_dir
from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.location import Location
from epochstream.settings import Settings
from schemas.keys import partition_of
from workers.log_events import events_of
from workers.log_reader import segments
from workers.log_schema import SCHEMAS, conform


def replay(writer: ReadModelWriter, layout: DataLayout, partitions: int) -> int:
    """Apply every event of the log; returns the events read."""
    files = sorted((path.name, event_type, path) for event_type in SCHEMAS for path in segments(layout, event_type))
    read = 0
    now = datetime.now(UTC)
    for _, group in itertools.groupby(files, key=lambda f: f[0]):
        entries = []
        for _, event_type, path in group:
            table = conform(pq.read_table(path), SCHEMAS[event_type])
            for chunk in events_of(event_type, table):
                entries.extend(chunk)
        read += len(entries)
        by_partition: dict[int, list] = {}
        for entry in entries:
            by_partition.setdefault(partition_of(entry[1].run_id, partitions), []).append(entry)
        for partition, part in by_partition.items():
            for start in range(0, len(part), 20_000):
                writer.apply(partition, part[start:start + 20_000], 0, now)
    return read


def _remove(path: Path) -> None:
    for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                  path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            extra.unlink()


def rebuild(settings: Settings) -> int:
    """Rebuild and swap; returns the number of runs in the new read model."""
    layout = DataLayout(settings.data_dir)
    location = Location.of(settings.data_dir)
    location.directory.mkdir(parents=True, exist_ok=True)
    generation = Location.new_generation()
    building = location.directory / f"building-{generation}.sqlite"
    try:
        writer = ReadModelWriter(building, durable=False, generation=generation, future_skew_s=settings.future_skew_s)
        try:
            replay(writer, layout, settings.partitions)
            runs = writer.con.execute("SELECT count(*) FROM runs").fetchone()[0]
            writer.con.execute("PRAGMA journal_mode = WAL")
        finally:
            writer.close()
        final = location.path_of(generation)
        os.replace(building, final)  # nothing has it open now, and it has no -wal yet: a rename is safe
        fsync_dir(location.directory)
        location.point_to(generation)
    except BaseException:
        _remove(building)
        raise
    return runs
