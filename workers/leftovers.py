"""What crashed maintenance jobs leave behind, removed by the next one (under the maintenance lock).

- `readmodel/building-*.sqlite*`: a rebuild killed before its swap (only a rebuild, which holds the lock,
  writes them); `readmodel/projections.rebuild-*`: the same from older versions; with the read model in
  PostgreSQL, its `building_<generation>` schemas;
- `log/<type>/.seg-*-compacted-*.parquet.*.tmp`: a compaction killed while writing its merged segment;
- any other hidden `*.tmp` in the log, and `snapshots/.runs-*.pending`, once older than STALE_S: a drain
  or a snapshot writes one in seconds, so one that old belongs to a process that died.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

from epochstream.layout import TMP_SUFFIX, DataLayout
from epochstream.readmodel.location import Location
from workers.log_schema import LOG_SCHEMAS

log = logging.getLogger("epochstream.leftovers")
STALE_S = 3600.0


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_ctime > seconds  # ctime: a pending snapshot's mtime is set ahead
    except FileNotFoundError:
        return False


def _remove(path: Path) -> bool:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def clean_leftovers(layout: DataLayout, stale_s: float = STALE_S, read_model_url: str = "") -> list[Path]:
    """Remove what crashed compactions, rebuilds, drains and snapshots left; returns what was removed (the
    files; a PostgreSQL read model's unfinished rebuild schemas are dropped and logged). Call it only while
    holding the maintenance lock."""
    if read_model_url:
        from epochstream.readmodel.postgres import PostgresStore

        schemas = PostgresStore(read_model_url).discard_unfinished()
        if schemas:
            log.warning("dropped %d schema(s) a crashed rebuild left in the read model: %s", len(schemas),
                        ", ".join(schemas[:5]))
    doomed: list[Path] = []
    readmodel = Location.of(layout.root).directory
    if readmodel.exists():
        doomed += [*readmodel.glob("building-*"), *readmodel.glob("projections.rebuild-*")]
    for event_type in LOG_SCHEMAS if layout.log_is_local else ():  # an object store has no temporary names
        directory = Path(layout.log_dir(event_type))
        if directory.exists():
            for tmp in directory.glob(f".*{TMP_SUFFIX}"):
                if "-compacted-" in tmp.name or _older_than(tmp, stale_s):
                    doomed.append(tmp)
    snapshots = layout.root / "snapshots"
    if snapshots.exists():
        doomed += [p for p in snapshots.glob(".runs-*") if _older_than(p, stale_s)]
    removed = []
    for path in doomed:
        with contextlib.suppress(OSError):
            if _remove(path):
                removed.append(path)
    if removed:
        log.warning("removed %d files a crashed job left behind: %s", len(removed),
                    ", ".join(layout.relative(p) for p in removed[:5]))
    return removed
