"""Quarantine: a log segment that cannot be read is moved aside, so it breaks nothing for anyone else.

A truncated or corrupt Parquet file in `log/<type>/` would fail every query of that type's view (the glob
matches it), every `rebuild` and every `compact`. Whoever meets one first (compaction, rebuild, a drain's
catch-up, the catalog's check when `epochstream sql` or the scheduler refreshes it) moves it to
`quarantine/<type>/<name>` and writes `quarantine/<type>/<name>.json` beside it: the reason, when, who
found it, what it says about itself (partition, newest stream id, row count, where readable). Its events
are then recovered from the broker where it still holds them (`workers.salvage`); the sidecar says how
many were recovered and whether any are lost. `quarantined()` lists them; the catalog's `quarantine`
view reads the sidecars.

Only damage quarantines a file: pyarrow's "not Parquet / corrupt" errors. A file that vanished (another
process quarantined or compacted it) or an I/O error with an errno (permissions, a full disk) is not
damage and is left where it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath

import pyarrow as pa
import pyarrow.parquet as pq

from epochstream.layout import DataLayout, atomic_write_bytes
from workers.log_schema import LOG_SCHEMAS
from workers.log_store import log_store, superseded_marker
from workers.segment_meta import partition_in_name, stamps_of, written_us

log = logging.getLogger("epochstream.quarantine")
SIDECAR = ".json"
SEED = "_seed.json"  # the view's glob always matches at least this empty file
CHECKED = ".checked"  # in quarantine/: its mtime is when the last check of the log began
CHECK_SLACK_S = 60.0  # a segment renamed into place this long after its last write is still checked
REWRITTEN_AFTER_S = 120.0  # a drain's segment is complete this soon after the time in its name


@dataclass
class QuarantinedFile:
    event_type: str
    name: str
    path: Path  # where the file is now
    original: str  # where it was, relative to the data directory
    reason: str
    when: datetime
    found_by: str  # compaction, rebuild, catch-up, catalog
    partition: int | None = None
    last_stream_id: str | None = None  # the newest stream entry it held, when readable
    events: int | None = None  # rows, when its footer is readable
    recovery: str = "pending"  # pending | recovered | partial | lost | not needed
    recovered_events: int = 0
    lost_events: int | None = None  # None: unknown
    recovery_note: str = ""

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["path"] = self.path.name
        out["when"] = self.when.isoformat()
        return out


def is_damage(exc: BaseException) -> bool:
    """pyarrow's errors for a file that is not (or no longer) valid Parquet; not a missing file, not EIO."""
    if isinstance(exc, (pa.ArrowInvalid, ValueError)):
        return True
    return type(exc) is OSError and exc.errno is None  # "Couldn't deserialize thrift", "Corrupt ... data"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def _self_description(path: Path) -> tuple[int | None, str | None, int | None]:
    """(partition, newest stream id, rows) from whatever of the footer is still readable."""
    try:
        meta = pq.read_metadata(path)
    except Exception:  # noqa: BLE001 - a damaged footer says nothing
        return partition_in_name(path.name), None, None
    partition, last = stamps_of(meta.schema.to_arrow_schema().metadata)
    return (partition if partition is not None else partition_in_name(path.name)), last, meta.num_rows


def save(layout: DataLayout, item: QuarantinedFile) -> None:
    atomic_write_bytes(_sidecar(item.path), (json.dumps(item.to_json()) + "\n").encode(), fsync=True)


def quarantine(layout: DataLayout, event_type: str, path: PurePath, reason: str,
               found_by: str) -> QuarantinedFile | None:
    """Move a damaged segment aside and describe it; None if it was gone already (someone else moved it).
    The quarantine is always local (`<data_dir>/quarantine`): a segment of an S3 log is copied there, then
    deleted from the bucket."""
    store = log_store(layout)
    target_dir = layout.quarantine / event_type
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    superseded = path.name in store.superseded_names(event_type)
    if not store.move_out(path, target):
        return None
    store.delete(superseded_marker(path))
    partition, last, rows = _self_description(target)
    item = QuarantinedFile(event_type, path.name, target, store.describe(layout, path), reason, datetime.now(UTC),
                           found_by, partition, last, rows)
    if superseded:
        item.recovery, item.lost_events = "not needed", 0
        item.recovery_note = "compaction had merged it already: its events are in the merged segment"
    save(layout, item)
    log.error("quarantined %s (%s): moved to %s; %s", item.original, reason, layout.relative(target),
              item.recovery_note or "its events will be recovered from the broker where it still holds them")
    return item


def quarantined(layout: DataLayout) -> list[QuarantinedFile]:
    """Every quarantined segment, oldest first (a moved file whose sidecar is missing is listed too)."""
    items = []
    if not layout.quarantine.exists():
        return items
    for directory in sorted(p for p in layout.quarantine.iterdir() if p.is_dir()):
        for path in sorted(directory.glob("seg-*.parquet")):
            try:
                raw = json.loads(_sidecar(path).read_text())
                raw["path"], raw["when"] = path, datetime.fromisoformat(raw["when"])
                items.append(QuarantinedFile(**raw))
            except (OSError, ValueError, TypeError, KeyError):
                when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                items.append(QuarantinedFile(directory.name, path.name, path, f"log/{directory.name}/{path.name}",
                                             "unknown: its description (the .json beside it) is missing or "
                                             "unreadable", when, "unknown", partition_in_name(path.name)))
    return sorted(items, key=lambda q: q.when)


def read_checked(layout: DataLayout, event_type: str, path: PurePath, found_by: str,
                 columns: list[str] | None = None) -> pa.Table | None:
    """The segment's table; None if it is gone or damaged (then it is quarantined here). A store that cannot
    be reached raises `LogStoreUnavailable` (never damage)."""
    try:
        return log_store(layout).read_table(path, columns=columns)
    except FileNotFoundError:
        return None
    except Exception as exc:
        if not is_damage(exc):
            raise
        quarantine(layout, event_type, path, f"{type(exc).__name__}: {exc}", found_by)
        return None


def damage_of(layout: DataLayout, path: PurePath, whole: bool = False) -> str | None:
    """Why a segment's footer (`whole`: any of it) cannot be read, or None if it can (or the file is gone)."""
    store = log_store(layout)
    try:
        store.read_table(path) if whole else store.read_metadata(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - only damage is reported, see is_damage
        return f"{type(exc).__name__}: {exc}" if is_damage(exc) else None
    return None


def _changed_after_written(path: PurePath, mtime: float) -> bool:
    """Modified well after the time in its name: something wrote to it after it was renamed into place (or it
    is a merged segment, named after its oldest part)."""
    written = written_us(path.name)
    return written is None or mtime * 1e6 > written + REWRITTEN_AFTER_S * 1e6


def check_log(layout: DataLayout, found_by: str) -> list[QuarantinedFile]:
    """Quarantine every segment that cannot be read. Only files modified since the last check began are
    opened (a truncation or an overwrite changes a file's mtime; segments are never rewritten), so this is
    cheap enough to run before every `epochstream sql`: a segment a drain just wrote has its footer read; one
    modified after its name's time is read whole once (a damaged data page, its footer intact)."""
    marker = layout.quarantine / CHECKED
    try:
        since = marker.stat().st_mtime - CHECK_SLACK_S
    except FileNotFoundError:
        since = float("-inf")
    started = time.time()
    found = []
    store = log_store(layout)
    for event_type in LOG_SCHEMAS:
        for file in store.files(event_type):
            if file.mtime < since:
                continue
            reason = damage_of(layout, file.path)
            if reason is None and _changed_after_written(file.path, file.mtime):
                reason = damage_of(layout, file.path, whole=True)
            if reason is not None:
                item = quarantine(layout, event_type, file.path, reason, found_by)
                if item is not None:
                    found.append(item)
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os.utime(marker, (started, started))
    return found
