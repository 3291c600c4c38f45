"""Rebuild: replay the whole log from scratch into a fresh projections directory, then swap it in.

The projections are a function of each run's event *set* (see workers/projections.py), so the result
equals the incremental one except `version` (set above the old one, so ETags never repeat) and
`ingested_at`. Run it with the drains paused (the CLI holds every partition's drain lock).
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from epochstream.layout import DataLayout, atomic_write_parquet
from epochstream.settings import Settings
from schemas.keys import partition_of
from workers.catalog import SEED
from workers.log_reader import read_log
from workers.log_schema import SCHEMAS
from workers.projections import INDEX_SCHEMA, project_run, read_summary, split_by_run, write_index


def rebuild_into(settings: Settings, target: Path, now: datetime | None = None) -> int:
    """Project the whole log into `target` (a projections directory); returns the number of runs."""
    now = now or datetime.now(UTC)
    source = DataLayout(settings.data_dir)
    fresh = _ProjectionsAt(target)
    tables = {name: read_log(source, name) for name in SCHEMAS}
    tables = {name: t for name, t in tables.items() if t.num_rows}
    by_partition: dict[int, list] = {}
    for run_id, per_run in split_by_run(tables).items():
        old = read_summary(source, run_id)
        per_run = {k: v for k, v in per_run.items() if v.num_rows}
        summary = project_run(fresh, run_id, per_run, now, min_version=(old.version + 1) if old else 1)
        if summary is not None:
            by_partition.setdefault(partition_of(run_id, settings.partitions), []).append(summary)
    for partition, summaries in by_partition.items():
        write_index(fresh, partition, summaries)
    atomic_write_parquet(INDEX_SCHEMA.empty_table(), fresh.index_dir / SEED, fsync=False)
    return sum(len(s) for s in by_partition.values())


class _ProjectionsAt(DataLayout):
    """A layout whose projections live at a given directory (the log paths are not used)."""

    def __init__(self, projections: Path):
        super().__init__(projections.parent)
        object.__setattr__(self, "_projections", projections)

    @property
    def projections(self) -> Path:
        return self._projections  # type: ignore[attr-defined]



def rebuild(settings: Settings) -> int:
    """Rebuild and swap: projections -> projections.old-*, fresh -> projections, then delete the old one."""
    layout = DataLayout(settings.data_dir)
    tag = uuid.uuid4().hex[:8]
    target = layout.root / f"projections.rebuild-{tag}"
    runs = rebuild_into(settings, target)
    old = layout.root / f"projections.old-{tag}"
    if layout.projections.exists():
        layout.projections.rename(old)
    target.rename(layout.projections)
    shutil.rmtree(old, ignore_errors=True)
    return runs

