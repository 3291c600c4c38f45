"""EpochAccumulator: sample-weighted means of per-batch means, and the bugs it exists to prevent."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from producer import EpochAccumulator

# 10 samples in batches of 4, 4 and an uneven last batch of 2.
SAMPLE_LOSSES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
BATCHES = [SAMPLE_LOSSES[0:4], SAMPLE_LOSSES[4:8], SAMPLE_LOSSES[8:10]]
TRUE_MEAN = sum(SAMPLE_LOSSES) / len(SAMPLE_LOSSES)  # 5.5


def batch_mean(batch: list[float]) -> float:
    return sum(batch) / len(batch)  # what loss_fn(reduction="mean") returns


def buggy_times_batch_size(batches):
    """The incident: batch-averaged losses multiplied by the batch size, then divided by the batch count."""
    running = 0.0
    for batch in batches:
        running += batch_mean(batch) * len(batch)
    return running / len(batches)


def buggy_integer_accumulator(batches):
    """The other half of the incident: the running total kept in an int (`total = 0; total += int(...)`),
    and per-sample losses below 1 truncate to zero: the stored epoch loss is 0."""
    total, seen = 0, 0
    for batch in batches:
        total += int(batch_mean(batch))
        seen += len(batch)
    return total / seen


def buggy_mean_of_means(batches):
    """Unweighted mean of batch means: the short last batch counts as much as a full one."""
    return sum(batch_mean(b) for b in batches) / len(batches)


def test_the_batch_size_bug_is_reproduced_and_the_accumulator_is_right():
    assert buggy_times_batch_size(BATCHES) == pytest.approx(55 / 3)  # 3.3x too large
    assert buggy_mean_of_means(BATCHES) == pytest.approx((2.5 + 6.5 + 9.5) / 3)  # 6.1667, not 5.5
    small = [[0.3, 0.2, 0.4, 0.1], [0.25, 0.35]]
    assert buggy_integer_accumulator(small) == 0  # zeros stored, a run that "learned nothing"

    acc = EpochAccumulator()
    for batch in BATCHES:
        acc.add_batch("train/loss", batch_mean(batch), len(batch))
    assert acc.compute()["train/loss"] == pytest.approx(TRUE_MEAN)
    assert acc.samples == 10

    acc.reset()
    for batch in small:
        acc.add_batch("train/loss", batch_mean(batch), len(batch))
    assert acc.compute()["train/loss"] == pytest.approx(sum(sum(b) for b in small) / 6)


def test_accuracy_is_correct_over_total_on_an_uneven_last_batch():
    acc = EpochAccumulator()
    acc.add_correct("val/accuracy", 30, 32)
    acc.add_correct("val/accuracy", 31, 32)
    acc.add_correct("val/accuracy", 1, 4)  # last batch: 4 samples, 1 right
    assert acc.compute()["val/accuracy"] == pytest.approx(62 / 68)
    # the per-batch mean of accuracies would say 0.6458...: wrong
    assert acc.compute()["val/accuracy"] != pytest.approx((30 / 32 + 31 / 32 + 1 / 4) / 3)


def test_zero_d_tensors_are_accepted_without_torch_knowledge_in_the_library():
    acc = EpochAccumulator()
    acc.add_batch("train/loss", torch.tensor(0.5), torch.tensor(3))
    acc.add_batch("train/loss", torch.tensor(2.0, dtype=torch.float64), 1)
    acc.add_correct("train/accuracy", (torch.tensor([1, 2, 3]) == torch.tensor([1, 0, 3])).sum(), 3)
    out = acc.compute()
    assert out["train/loss"] == pytest.approx((0.5 * 3 + 2.0) / 4)
    assert out["train/accuracy"] == pytest.approx(2 / 3)
    assert all(type(v) is float for v in out.values())


def test_samples_is_the_largest_batch_weighted_count_else_the_accuracy_total():
    acc = EpochAccumulator()
    assert acc.samples == 0
    acc.add_correct("train/accuracy", 3, 7)
    assert acc.samples == 7
    acc.add_batch("train/loss", 1.0, 5)
    acc.add_batch("val/loss", 1.0, 2)
    assert acc.samples == 5  # the batch-weighted metrics win over the accuracy counts


def test_nan_batches_make_a_nan_epoch_not_an_error():
    acc = EpochAccumulator()
    acc.add_batch("train/loss", 1.0, 4)
    acc.add_batch("train/loss", float("nan"), 4)
    assert math.isnan(acc.compute()["train/loss"])


def test_unusable_values_are_skipped_and_logged_once(caplog):
    acc = EpochAccumulator()
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        for _ in range(3):
            acc.add_batch("train/loss", "0.5", 4)
            acc.add_batch("train/loss", 0.5, -1)
            acc.add_correct("acc", 5, 4)
            acc.add_batch("train/loss", torch.tensor([1.0, 2.0]), 2)
        acc.add_batch("train/loss", 2.0, 2.0)  # a whole float is a count
    assert acc.compute() == {"train/loss": 2.0}
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "'train/loss'" in m]) == 1
    assert len([m for m in messages if "'acc'" in m]) == 1


def test_empty_batches_and_reset():
    acc = EpochAccumulator()
    acc.add_batch("train/loss", 123.0, 0)
    assert acc.compute() == {}
    acc.add_batch("train/loss", 1.0, 1)
    acc.reset()
    assert acc.compute() == {} and acc.samples == 0


sample_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(st.lists(sample_values, min_size=1, max_size=17), min_size=1, max_size=20))
def test_property_equals_the_mean_over_all_individual_samples(batches):
    acc = EpochAccumulator()
    for batch in batches:
        acc.add_batch("loss", math.fsum(batch) / len(batch), len(batch))
    every = [x for batch in batches for x in batch]
    expected = math.fsum(every) / len(every)
    scale = max(abs(x) for x in every)
    assert math.isclose(acc.compute()["loss"], expected, rel_tol=1e-9, abs_tol=1e-9 * scale)
    assert acc.samples == len(every)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=30))
def test_property_accuracy_equals_correct_over_all_samples(batches):
    acc = EpochAccumulator()
    right = out_of = 0
    for a, b in batches:
        correct, total = min(a, b), max(a, b)
        acc.add_correct("acc", correct, total)
        right, out_of = right + correct, out_of + total
    result = acc.compute()
    if out_of == 0:
        assert "acc" not in result
    else:
        assert result["acc"] == pytest.approx(right / out_of)
