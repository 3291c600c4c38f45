"""The read side of storage: projections only, opened read-only, never written.

Every read goes through a `FileCache`, so a poll for unchanged data costs a `stat` and a dict lookup.
Each method returns the identity (`FileKey`) of the file version it parsed next to the value, so the
routes can build ETags that match the content exactly.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from epochstream.errors import TerminalError
from epochstream.layout import DataLayout
from query_api.filecache import FileCache, FileKey, stat_key
from query_api.limits import CACHE_ENTRIES
from query_api.render import static_item
from query_api.runindex import RunIndex
from query_api.series import EpochSeries, SystemPoint, epoch_series, system_series
from schemas.envelope import RUN_ID_PATTERN
from schemas.read_models import RunSummary

_RUN_ID = re.compile(RUN_ID_PATTERN)
_INDEX_NAME = re.compile(r"^runs-\d+\.parquet$")


class RunNotFound(TerminalError, LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id!r} in this data directory (see GET /runs for the runs there are)")


def _parse_summary(fh: IO[bytes]) -> RunSummary:
    return RunSummary.model_validate(json.loads(fh.read()))


def _parse_epochs(fh: IO[bytes]) -> EpochSeries:
    return epoch_series(pq.read_table(fh))


def _parse_system(fh: IO[bytes]) -> list[SystemPoint]:
    return system_series(pq.read_table(fh))


def _parse_index(fh: IO[bytes]) -> list[dict[str, Any]]:
    return pq.read_table(fh).to_pylist()


@dataclass
class ProjectionStore:
    layout: DataLayout
    summaries: FileCache[RunSummary] = field(init=False)
    histories: FileCache[EpochSeries] = field(init=False)
    systems: FileCache[list[SystemPoint]] = field(init=False)
    index_parts: FileCache[list[dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self.summaries = FileCache(_parse_summary, CACHE_ENTRIES)
        self.histories = FileCache(_parse_epochs, CACHE_ENTRIES)
        self.systems = FileCache(_parse_system, CACHE_ENTRIES)
        self.index_parts = FileCache(_parse_index, 1024)
        self._index: tuple[tuple, RunIndex] | None = None

    # --- paths and identities (no reading) -------------------------------------------------------
    def check_id(self, run_id: str) -> None:
        if not _RUN_ID.match(run_id):
            raise RunNotFound(run_id)

    def summary_path(self, run_id: str) -> Path:
        return self.layout.run_summary(run_id)

    def epochs_path(self, run_id: str) -> Path:
        return self.layout.run_epochs(run_id)

    def system_path(self, run_id: str) -> Path:
        return self.layout.run_system(run_id)

    def keys(self, *paths: Path) -> tuple[FileKey | None, ...]:
        return tuple(stat_key(p) for p in paths)

    # --- reads -----------------------------------------------------------------------------------
    async def summary(self, run_id: str) -> tuple[FileKey, RunSummary]:
        self.check_id(run_id)
        got = await self.summaries.get(self.summary_path(run_id))
        if got is None:
            raise RunNotFound(run_id)
        return got

    async def history(self, run_id: str) -> tuple[FileKey | None, EpochSeries]:
        got = await self.histories.get(self.epochs_path(run_id))
        return (None, EpochSeries([], [], [], [])) if got is None else got

    async def system(self, run_id: str) -> tuple[FileKey | None, list[SystemPoint]]:
        got = await self.systems.get(self.system_path(run_id))
        return (None, []) if got is None else got

    def index_files(self) -> list[Path]:
        try:
            names = os.listdir(self.layout.index_dir)
        except FileNotFoundError:
            return []
        return sorted(self.layout.index_dir / n for n in names if _INDEX_NAME.match(n))

    def index_identity(self) -> tuple:
        """What the listing is made of, by identity only: the index files, or (before the workers write an
        index) every run summary."""
        files = self.index_files()
        if files:
            return ("index", tuple((p.name, stat_key(p)) for p in files))
        runs_dir = self.layout.projections / "runs"
        try:
            run_ids = sorted(os.listdir(runs_dir))
        except FileNotFoundError:
            return ("summaries", ())
        return ("summaries", tuple((r, stat_key(self.summary_path(r))) for r in run_ids if _RUN_ID.match(r)))

    def cached_index(self, identity: tuple) -> RunIndex | None:
        return self._index[1] if self._index is not None and self._index[0] == identity else None

    def run_index(self, identity: tuple | None = None) -> tuple[tuple, RunIndex]:
        """The listing, rebuilt only when its files changed (call it in a worker thread: it may parse)."""
        identity = identity if identity is not None else self.index_identity()
        if self._index is not None and self._index[0] == identity:
            return self._index
        rows: list[dict[str, Any]] = []
        if identity[0] == "index":
            for name, _ in identity[1]:
                got = self.index_parts.load(self.layout.index_dir / name)
                rows.extend(got[1] if got else [])
        else:
            for run_id, _ in identity[1]:
                got = self.summaries.load(self.summary_path(run_id))
                if got is not None:
                    rows.append(summary_row(got[1]))
        built = (identity, RunIndex.build(rows, static_item))
        self._index = built
        return built


def summary_row(m: RunSummary) -> dict[str, Any]:
    """The index columns of one summary (the fallback listing when no index file exists yet)."""
    return {"run_id": m.run_id, "project": m.project, "name": m.name, "status": m.status,
            "started_at": m.started_at, "finished_at": m.finished_at, "last_seen": m.last_seen,
            "heartbeat_s": m.heartbeat_s, "epochs": m.epochs, "last_epoch": m.last_epoch,
            "best_metric": m.best_metric, "best_epoch": m.best_epoch, "best_value": m.best_value,
            "final_loss": m.final_loss, "version": m.version, "recommendation": m.trends.recommendation,
            "is_overfitting": m.trends.is_overfitting, "is_plateaued": m.trends.is_plateaued,
            "is_diverging": m.trends.is_diverging}


