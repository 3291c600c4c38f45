"""The name rule, directly: framework names -> ours, always valid, never merging two values into one."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from producer.integrations.names import fit_name, map_metrics, map_names, metric_name, number
from schemas.envelope import METRIC_NAME_PATTERN


@pytest.mark.parametrize(("name", "ours"), [
    ("loss", "train/loss"), ("train_loss", "train/loss"), ("val_loss", "val/loss"), ("eval_loss", "val/loss"),
    ("valid_loss", "val/loss"), ("validation_loss", "val/loss"), ("val/loss", "val/loss"),
    ("eval/loss", "val/loss"), ("lr", "learning_rate"), ("learning_rate", "learning_rate"),
    ("grad_norm", "gradient_norm"), ("lr-Adam", "learning_rate"), ("lr-SGD/pg1", "learning_rate/pg1"),
    ("lr-Adam-momentum", "momentum"), ("lr-my_scheduler", "learning_rate"),
    ("val_acc", "val/accuracy"), ("train_acc", "train/accuracy"), ("eval_accuracy", "val/accuracy"),
    ("eval_runtime", "val/runtime"), ("val_ppl", "val/perplexity"), ("test_f1", "test/f1"),
    ("training_loss", "train/loss"), ("val_mae", "val/mae"), ("epoch_duration", "epoch_duration"),
    ("custom", "custom"), ("gpu temp (C)", "gpu_temp__C_"), ("-x", "_-x"), ("", "_"),
])
def test_documented_names(name, ours):
    assert metric_name(name) == ours


def test_a_bare_prefix_names_the_unprefixed_metrics_but_not_the_shared_ones():
    assert metric_name("accuracy", bare="train") == "train/accuracy"
    assert metric_name("acc", bare="train") == "train/accuracy"
    assert metric_name("mae", bare="train") == "train/mae"
    assert metric_name("loss", bare="train") == "train/loss"
    assert metric_name("val_mae", bare="train") == "val/mae"
    assert metric_name("learning_rate", bare="train") == "learning_rate"


def test_names_that_would_collide_keep_their_own():
    assert map_names(["loss", "train_loss", "val_loss"]) == {"loss": "loss", "train_loss": "train_loss",
                                                             "val_loss": "val/loss"}
    assert map_names(["lr-Adam", "lr-SGD"]) == {"lr-Adam": "lr-Adam", "lr-SGD": "lr-SGD"}
    assert map_names(["a b", "a_b", "a?b"]) == {"a b": "a_b", "a_b": "a_b_2", "a?b": "a_b_3"}


@given(st.lists(st.text(max_size=150), max_size=12, unique=True))
def test_every_name_fits_the_contract_and_no_two_values_merge(names):
    mapped = map_names(names)
    assert set(mapped) == set(names)
    assert len(set(mapped.values())) == len(names)  # one name per value: nothing overwritten
    assert all(re.match(METRIC_NAME_PATTERN, ours) for ours in mapped.values())


@given(st.text(max_size=200))
def test_fit_name_is_idempotent(name):
    assert fit_name(fit_name(name)) == fit_name(name)


def test_values_numbers_and_not():
    assert number(1) == 1.0 and number(True) == 1.0 and number(np.float32(0.5)) == 0.5
    assert number(torch.tensor(2.5)) == 2.5 and math.isnan(number(float("nan")))
    assert number("0.5") is None and number(None) is None and number([1.0]) is None
    assert number(torch.tensor([1.0, 2.0])) is None
    values, not_numbers = map_metrics({"loss": 1, "val_loss": np.float64(2.0), "note": "hi", "epoch": 3},
                                      skip=("epoch",))
    assert values == {"train/loss": 1.0, "val/loss": 2.0} and not_numbers == ["note"]
