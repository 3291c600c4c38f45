"""The terminal rendering helpers: pure functions, tested directly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from epochstream.cli.render import (
    BLOCKS,
    NON_FINITE_MARK,
    flags,
    fmt,
    metric_series,
    recommendation_text,
    sparkline,
    summary_value,
    system_series,
    trends_of,
)

values = st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)), max_size=80)


@given(values, st.integers(min_value=1, max_value=60))
def test_sparkline_has_one_cell_per_recent_value(series, width):
    line = sparkline(series, width)
    recent = series[-width:]
    assert len(line) == len(recent)
    for v, cell in zip(recent, line, strict=True):
        if v is None:
            assert cell == " "
        elif not math.isfinite(v):
            assert cell == NON_FINITE_MARK
        else:
            assert cell in BLOCKS


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=2, max_size=40, unique=True))
def test_sparkline_keeps_the_order_of_values(series):
    ordered = sorted(series)
    line = sparkline(ordered, 100)
    levels = [BLOCKS.index(c) for c in line]
    assert levels == sorted(levels)
    assert levels[0] == 0 and levels[-1] == len(BLOCKS) - 1


def test_metric_series_restores_non_finite_markers():
    rows = [{"epoch": 0, "metrics": {"val/loss": 1.5}},
            {"epoch": 1, "metrics": {"val/loss": None}, "non_finite": {"val/loss": "nan"}},
            {"epoch": 2, "metrics": {"val/loss": None}, "non_finite": {"val/loss": "+inf"}},
            {"epoch": 3, "metrics": {}}]
    series = metric_series(rows, "val/loss")
    assert series[0] == 1.5 and math.isnan(series[1]) and series[2] == math.inf and series[3] is None
    assert sparkline(series, 10) == "▅×× "


def test_fmt_spells_out_what_is_not_a_plain_number():
    assert [fmt(None), fmt(math.nan), fmt(-math.inf), fmt(3), fmt(0.123456789), fmt(True)] == \
        ["-", "nan", "-inf", "3", "0.1235", "yes"]


def test_summary_value_applies_the_non_finite_marker():
    assert math.isnan(summary_value({"best_value": None, "non_finite": {"best_value": "nan"}}, "best_value"))
    assert summary_value({"best_value": 0.5, "non_finite": {}}, "best_value") == 0.5


def test_flags_and_recommendation_from_a_summary_or_a_list_row():
    summary = {"trends": {"is_overfitting": True, "epochs_since_improvement": 4, "recommendation": "use_checkpoint",
                          "recommendation_epoch": 2, "suspect_metrics": {"train/loss": "all_zero"}}}
    row = {"is_diverging": True, "is_overfitting": False, "recommendation": "investigate", "run_id": "r"}
    assert flags(trends_of(summary)) == ["overfitting", "4 epochs since improvement", "train/loss: all_zero"]
    assert recommendation_text(trends_of(summary)) == "use checkpoint (epoch 2)"
    assert flags(trends_of(row)) == ["diverging"]
    assert recommendation_text(trends_of(row)) == "investigate"
    assert flags({}) == [] and recommendation_text(None) == "-"


def test_system_series_without_gpu_samples_is_empty():
    assert system_series({"points": [{"seq": 1, "values": {"cpu_percent": 3.0}}]}) == {"mem": [], "util": []}
    assert system_series(None) == {"mem": [], "util": []}  # `watch` draws without system data


def test_system_series_reads_the_flat_values_the_api_sends():
    payload = {"points": [
        {"seq": 1, "values": {"cpu_percent": 10.0, "gpu0/mem_allocated_mb": 512.0, "gpu0/utilization_pct": 90.0,
                              "gpu1/mem_allocated_mb": 1.0}},
        {"seq": 2, "values": {"cpu_percent": 12.0}},
        {"seq": 3, "values": {"gpu0/mem_allocated_mb": 640.0}},
    ]}
    assert system_series(payload) == {"mem": [512.0, 640.0], "util": [90.0, None]}
