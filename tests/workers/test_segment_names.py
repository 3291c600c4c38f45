"""Segment names carry their newest stream id, so a drain taking a partition opens no segment behind it."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from epochstream.layout import DataLayout
from workers.catch_up import segments_ahead
from workers.log_store import LocalLogStore
from workers.segment_meta import SEGMENT_LAST_ID, SEGMENT_PARTITION, last_id_in_name, segment_name, written_us


def test_a_segment_name_round_trips_its_newest_id():
    now = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
    name = segment_name(now, 3, "1733108645123-17")
    assert name.startswith("seg-20261202T030405678901Z-p3-") and name.endswith("-s1733108645123.17.parquet")
    assert last_id_in_name(name) == "1733108645123-17"
    assert written_us(name) == 1796180645678901
    assert last_id_in_name("seg-20261202T030405678901Z-p3-ab12cd34.parquet") is None  # older names
    assert last_id_in_name(f"{name.removesuffix('.parquet')}-compacted-ab12cd34.parquet") is None  # holds newer


def _segment(layout: DataLayout, partition: int, last_id: str, *, named: bool) -> str:
    directory = layout.log_dir("epoch")
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table({"a": [1]}).replace_schema_metadata(
        {SEGMENT_PARTITION: str(partition), SEGMENT_LAST_ID: last_id})
    name = segment_name(datetime.now(UTC), partition, last_id)
    if not named:
        name = name.rpartition("-s")[0] + ".parquet"
    pq.write_table(table, directory / name)
    return name


def test_only_segments_ahead_are_opened(tmp_path, monkeypatch):
    layout = DataLayout(tmp_path)
    behind = [_segment(layout, 0, f"{i}-0", named=True) for i in range(1, 40)]
    ahead = _segment(layout, 0, "100-3", named=True)
    _segment(layout, 1, "200-0", named=True)  # another partition's
    old_style = _segment(layout, 0, "101-0", named=False)
    opened: list[str] = []
    real = LocalLogStore.read_schema
    monkeypatch.setattr(LocalLogStore, "read_schema", lambda self, path: opened.append(path.name) or real(self, path))
    found = [path.name for _, path in segments_ahead(layout, 0, "50-0")]
    assert found == sorted([ahead, old_style])
    assert sorted(opened) == sorted([ahead, old_style])  # none of the 39 behind was opened
    assert behind
