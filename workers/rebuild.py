"""Rebuild: replay the whole log into a fresh read model, then swap it in atomically.

The read model is a function of each run's event *set* (see `epochstream.readmodel.plan`), so the result
equals the incremental one, whatever state the old database is in: the old one is never read, only the
log. Segments are replayed in name order (the order drains wrote them) so almost every run takes the
append path. The new database is built where no reader looks (`store.building_target`), then swapped in
(`store.swap_in`): with SQLite, as `building-<generation>.sqlite` (unsynced: a crash means starting over),
switched to WAL, renamed to its final name while nothing has it open, and only then named in
`readmodel/CURRENT`; with PostgreSQL, as the schema `building_<generation>`, renamed and pointed to in one
transaction. A poller reads the old database until that instant and the new, complete one after it. A
failed rebuild removes what it built, and one killed outright leaves its `building-*` to the next
maintenance job (`workers.leftovers`). Run it with the drains paused (the CLI
holds every partition's drain lock); it holds the maintenance lock itself, so no compaction deletes a
segment under it. A segment it cannot read is quarantined and its events recovered from the broker
(`workers.salvage`) before the swap; what could not be recovered is reported, never silently left out.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import PurePath

from epochstream.faults import crash_point
from epochstream.layout import DataLayout
from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.stores import store_for
from epochstream.settings import Settings
from schemas.keys import partition_of
from workers.leftovers import clean_leftovers
from workers.log_events import events_of
from workers.log_reader import segments
from workers.log_schema import SCHEMAS, conform
from workers.maintenance_lock import maintenance_lock, shared_lock_for
from workers.quarantine import read_checked


def replay(writer: ReadModelWriter, layout: DataLayout, partitions: int,
           skip: frozenset[PurePath] = frozenset()) -> int:
    """Apply every event of the log (but the segments in `skip`); returns the events read."""
    files = sorted((path.name, event_type, path) for event_type in SCHEMAS for path in segments(layout, event_type)
                   if path not in skip)
    read = 0
    now = datetime.now(UTC)
    for _, group in itertools.groupby(files, key=lambda f: f[0]):
        entries = []
        for _, event_type, path in group:
            raw = read_checked(layout, event_type, path, "rebuild")
            if raw is None:
                continue
            table = conform(raw, SCHEMAS[event_type])
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


def _all_segments(layout: DataLayout) -> frozenset[PurePath]:
    return frozenset(path for event_type in SCHEMAS for path in segments(layout, event_type))


def rebuild(settings: Settings, wait_s: float = 0.0) -> int:
    """Rebuild and swap under the maintenance lock (waiting up to `wait_s` for it, else `MaintenanceBusy`);
    returns the number of runs in the new read model."""
    layout = DataLayout.of(settings)
    with maintenance_lock(layout, "rebuild", wait_s, shared_lock_for(settings)):
        clean_leftovers(layout, read_model_url=settings.read_model_url)
        return _rebuild(settings, layout)


def _rebuild(settings: Settings, layout: DataLayout) -> int:
    from workers.salvage import recover_pending

    store = store_for(settings.data_dir, settings.read_model_url)
    generation = store.new_generation()
    building = store.building_target(generation)
    try:
        writer = ReadModelWriter(building, durable=False, generation=generation, future_skew_s=settings.future_skew_s,
                                 store=store)
        try:
            replayed = _all_segments(layout)
            replay(writer, layout, settings.partitions)
            if recover_pending(settings):  # segments it quarantined: replay what the broker gave back
                replay(writer, layout, settings.partitions, skip=replayed)
            runs = writer.con.execute("SELECT count(*) FROM runs").fetchone()[0]
            store.finish_building(writer.con)
        finally:
            writer.close()
        crash_point("rebuild_before_swap")
        store.swap_in(generation, building)
    except BaseException:
        store.discard_building(building)
        raise
    return runs
