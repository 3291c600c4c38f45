"""The read model is a function of each run's event set: any batching, order, redelivery or duplication
gives the same content, and so does a rebuild of the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epochstream.readmodel import ReadModelWriter
from epochstream.readmodel.compare import canonical
from schemas.epoch import EpochV2
from schemas.run_config import RunConfigV1
from schemas.run_finished import RunFinishedV2
from schemas.run_started import RunStartedV2
from schemas.step import StepV1
from schemas.system import SystemV2

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_events(epochs: list[tuple[int, float]], steps: list[tuple[int, float]], resume_at: int | None):
    """A run; with `resume_at`, a second attempt starts after the first third of its epochs and rewinds."""
    seq = iter(range(1, 10_000))

    def env(n: int):
        s = next(seq)
        return {"event_id": f"r:{s}", "run_id": "r", "seq": s, "ts": T0 + timedelta(seconds=s + n)}

    out = [RunStartedV2(**env(0), project="p", config={"lr": 0.1}, tags=["a"])]
    for i, (epoch, loss) in enumerate(epochs):
        if resume_at is not None and i == len(epochs) // 3:
            out.append(RunFinishedV2(**env(0), status="interrupted"))
            out.append(RunStartedV2(**env(0), project="p", config={"lr": 0.1}, resume=True))
            out.append(EpochV2(**env(0), epoch=resume_at, metrics={"train/loss": 9.0}))
            out.append(StepV1(**env(0), step=resume_at * 20, metrics={"train/loss": 9.0}))
        out.append(EpochV2(**env(0), epoch=epoch, metrics={"train/loss": loss, "val/loss": loss * 1.5}))
    for step, loss in steps:
        out.append(StepV1(**env(0), step=step, metrics={"train/loss": loss, "lr": 0.1}))
    out.append(SystemV2(**env(0), cpu_percent=1.0))
    out.append(RunConfigV1(**env(0), config={"late": True}))
    out.append(RunFinishedV2(**env(0), status="completed"))
    return out


def apply_all(writer: ReadModelWriter, deliveries) -> dict:
    for batch in deliveries:
        writer.apply(0, batch, 1, T0)
    content = canonical(writer.con)
    writer.close()
    return content


epoch_lists = st.lists(st.tuples(st.integers(0, 8), st.floats(0.01, 10)), min_size=1, max_size=12)
step_lists = st.lists(st.tuples(st.integers(0, 300), st.floats(0.01, 10)), max_size=120)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(epoch_lists, step_lists, st.none() | st.integers(0, 3), st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_batching_order_and_duplication_gives_the_same_read_model(make_writer, epochs, steps, resume_at,
                                                                        rnd, cuts):
    events = run_events(epochs, steps, resume_at)
    one_shot = apply_all(make_writer(), [[(f"{i + 1}-0", e, T0) for i, e in enumerate(events)]])
    shuffled = events + rnd.sample(events, k=len(events) // 2)  # the same events XADDed twice
    rnd.shuffle(shuffled)
    entries = [(f"{i + 1}-0", e, T0) for i, e in enumerate(shuffled)]
    points = sorted(rnd.sample(range(1, len(entries)), k=min(cuts, len(entries) - 1)))
    batches = [entries[a:b] for a, b in zip([0, *points], [*points, len(entries)], strict=True)]
    batches.insert(rnd.randrange(1, len(batches) + 1), rnd.choice(batches))  # a redelivered batch
    assert apply_all(make_writer(), batches) == one_shot
    summary = one_shot["runs"]["r"]["summary"]
    latest: dict[int, float] = {}
    for e, loss in epochs:
        latest[e] = loss
    stored = {row[1] for row in one_shot["epochs"]}
    if resume_at is None:
        assert stored == set(latest) and summary["status"] == "completed" and len(summary["attempts"]) == 1
    else:
        assert len(summary["attempts"]) == 2 and summary["attempts"][0]["status"] == "interrupted"
    assert one_shot["runs"]["r"]["config"] == {"lr": 0.1, "late": True}
    if resume_at is None:
        assert [r[1] for r in one_shot["steps"]] == sorted({s for s, _ in steps})
    assert [r[2] for r in one_shot["steps"]] == list(range(len(one_shot["steps"])))  # ordinals 0..n-1
