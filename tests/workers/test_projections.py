"""Projections are a function of a run's event set: any batching, order or duplication gives the same result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from epochstream.layout import DataLayout
from schemas.epoch import EpochV2
from schemas.run_finished import RunFinishedV1
from schemas.run_started import RunStartedV1
from workers.log_schema import tables_by_type
from workers.projections import VOLATILE, read_summary, update_runs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_events(epochs: list[tuple[int, float]]):
    events = [RunStartedV1(event_id="r:0", run_id="r", seq=0, ts=T0, project="p", config={"lr": 0.1})]
    for i, (epoch, loss) in enumerate(epochs, start=1):
        events.append(EpochV2(event_id=f"r:{i}", run_id="r", seq=i, ts=T0 + timedelta(seconds=i), epoch=epoch,
                              metrics={"train/loss": loss, "val/loss": loss * 1.5}))
    events.append(RunFinishedV1(event_id="r:end", run_id="r", seq=len(epochs) + 1,
                                ts=T0 + timedelta(seconds=len(epochs) + 1), status="completed"))
    return events


def project(tmp_path, batches) -> tuple[dict, list]:
    layout = DataLayout(tmp_path)
    for n, batch in enumerate(batches):
        update_runs(layout, tables_by_type([(f"1-{n}-{k}", e) for k, e in enumerate(batch)], T0), 4, T0)
    summary = read_summary(layout, "r").model_dump(exclude=VOLATILE)
    return summary, pq.read_table(layout.run_epochs("r")).to_pylist()


epoch_lists = st.lists(st.tuples(st.integers(0, 8), st.floats(0.01, 10)), min_size=1, max_size=15)


@settings(max_examples=40, deadline=None)
@given(epoch_lists, st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_batching_order_and_duplication_gives_the_same_projection(tmp_path_factory, epochs, rnd, cuts):
    events = run_events(epochs)
    one_shot = project(tmp_path_factory.mktemp("one"), [events])
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # redeliveries
    rnd.shuffle(shuffled)
    points = sorted(rnd.sample(range(1, len(shuffled)), k=min(cuts, len(shuffled) - 1)))
    batches = [shuffled[a:b] for a, b in zip([0, *points], [*points, len(shuffled)], strict=True)]
    assert project(tmp_path_factory.mktemp("many"), batches) == one_shot
    summary, rows = one_shot
    assert [r["epoch"] for r in rows] == sorted({e for e, _ in epochs})  # one row per epoch, in order
    latest = {}
    for e, loss in epochs:
        latest[e] = loss  # a re-logged epoch: the later seq wins
    assert [r["metrics"][0][1] for r in rows] == [latest[e] for e in sorted(latest)]
    assert summary["status"] == "completed" and summary["events"] == len(latest) + 2
