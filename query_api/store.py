"""The read side of storage: projections only, opened read-only, never written."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from epochstream.layout import DataLayout
from schemas.envelope import RUN_ID_PATTERN
from workers.projections import history_rows
from workers.trends import EpochRow

_RUN_ID = re.compile(RUN_ID_PATTERN)


class RunNotFound(LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id!r} in this data directory (see GET /runs for the runs there are)")


@dataclass
class ProjectionStore:
    layout: DataLayout

    def summary(self, run_id: str) -> dict[str, Any]:
        if not _RUN_ID.match(run_id):
            raise RunNotFound(run_id)
        try:
            return json.loads(self.layout.run_summary(run_id).read_text())
        except FileNotFoundError:
            raise RunNotFound(run_id) from None

    def history(self, run_id: str) -> list[EpochRow]:
        self.summary(run_id)
        path = self.layout.run_epochs(run_id)
        if not path.exists():
            return []
        return history_rows(pq.read_table(path))
