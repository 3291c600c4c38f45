"""The read model's writer on a real SQLite file: identities reused with other content are found before the log
is written (`conflicts`), and timestamps from the future are ordered by ingestion time and flagged."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson

from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.batch import DEFAULT_FUTURE_SKEW
from epochstream.readmodel.values import to_us
from epochstream.settings import Settings
from schemas.epoch import EpochV2
from schemas.run_started import RunStartedV2

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAR = datetime(9999, 12, 31, tzinfo=UTC)


def epoch(run_id: str, seq: int, loss: float, ts: datetime = T0) -> EpochV2:
    return EpochV2(event_id=f"{run_id}:{seq}", run_id=run_id, seq=seq, ts=ts, epoch=seq, metrics={"train/loss": loss})


def test_conflicts_name_other_content_under_a_taken_identity_and_nothing_else(make_writer):
    writer = make_writer()
    try:
        applied = [epoch("a", s, 1.0 / s) for s in range(1, 6)]
        writer.apply(0, [(f"{s}-0", e, T0) for s, e in enumerate(applied, 1)], 1, T0)
        batch = [
            ("10-0", epoch("a", 3, 1.0 / 3)),  # the same event again (a redelivery, a replay): no conflict
            ("11-0", epoch("a", 4, 99.0)),  # other content under an applied identity
            ("12-0", epoch("a", 6, 0.1)),  # new
            ("13-0", epoch("a", 6, 0.1)),  # the same new event twice in one batch: no conflict
            ("14-0", epoch("a", 7, 0.2)),  # new...
            ("15-0", epoch("a", 7, 77.0)),  # ...and another payload for it later in the batch: the first stands
            ("16-0", epoch("b", 4, 99.0)),  # another run's seq 4: its own identity
        ]
        found = writer.conflicts(batch)
        assert sorted(found) == ["11-0", "15-0"]
        assert "already applied as 'a:4'" in found["11-0"] and "taken in this batch as 'a:7'" in found["15-0"]
        assert all("different content" in why and "first one stands" in why for why in found.values())
        result = writer.apply(0, [(sid, e, T0) for sid, e in batch if sid not in found], 1, T0)
        assert result.conflicts == [] and result.duplicates == 2  # what the pre-check passed applies cleanly
        # apply's own check stays as the safety net for what reaches it anyway
        assert [sid for sid, _ in writer.apply(0, [("20-0", epoch("a", 2, 5.0), T0)], 1, T0).conflicts] == ["20-0"]
    finally:
        writer.close()


def _runs(writer: ReadModelWriter) -> dict[str, dict]:
    rows = writer.con.execute("SELECT run_id, sort_us, last_seen_us, stale_after_us, summary FROM runs").fetchall()
    return {r[0]: {"sort_us": r[1], "last_seen_us": r[2], "stale_after_us": r[3], **orjson.loads(r[4])} for r in rows}


def _started(run_id: str, ts: datetime) -> RunStartedV2:
    return RunStartedV2(event_id=f"{run_id}:1", run_id=run_id, seq=1, ts=ts, project="p")


def test_a_year_9999_clock_is_ordered_by_ingestion_and_flagged(make_writer):
    writer = make_writer()
    ingested = T0 + timedelta(hours=1)
    try:
        writer.apply(0, [("1-0", _started("future", FAR), ingested), ("2-0", epoch("future", 2, 1.0, FAR), ingested),
                         ("3-0", _started("honest", T0), ingested)], 1, ingested)
        runs = _runs(writer)
        (stored_ts,) = writer.con.execute("SELECT ts_us FROM epochs WHERE run_id = 'future'").fetchone()
    finally:
        writer.close()
    future, honest = runs["future"], runs["honest"]
    assert future["sort_us"] == to_us(ingested) and future["last_seen_us"] == to_us(ingested)
    assert datetime.fromisoformat(future["started_at"]) == ingested
    assert future["clock_ahead_s"] == (FAR - ingested).total_seconds()
    assert honest["clock_ahead_s"] is None and honest["sort_us"] == to_us(T0)
    # Silent since its (clamped) ingestion: stale now, not "running" until the year 9999.
    assert future["stale_after_us"] < time.time() * 1e6
    assert stored_ts == to_us(FAR)  # the event's own ts stays as sent


def test_the_skew_is_a_setting_and_its_default_is_a_day(make_writer):
    assert Settings().future_skew_s == DEFAULT_FUTURE_SKEW.total_seconds() == 86_400
    hour_ahead = T0 + timedelta(hours=1)
    for skew, clamped in ((86_400.0, False), (60.0, True)):
        writer = make_writer(future_skew_s=skew)
        try:
            writer.apply(0, [("1-0", _started("r", hour_ahead), T0)], 1, T0)
            run = _runs(writer)["r"]
        finally:
            writer.close()
        assert (run["clock_ahead_s"] == 3600.0) is clamped and (run["clock_ahead_s"] is None) is not clamped
        assert run["sort_us"] == to_us(T0 if clamped else hour_ahead)
