"""The drop ledger and the value checks behind it (pure: no broker)."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from producer.drafts import check_metrics
from producer.drops import DropLedger
from schemas.drops import DropReport
from schemas.envelope import METRIC_NAME_PATTERN

names = st.one_of(st.sampled_from(["train/loss", "val/loss", "acc@1", "top 5", "", "/x", "a" * 200]),
                  st.text(max_size=20), st.integers(0, 3))
values = st.one_of(st.floats(allow_nan=True), st.integers(-10**30, 10**30), st.none(), st.text(max_size=5),
                   st.binary(max_size=3), st.booleans(), st.complex_numbers(), st.lists(st.floats(), max_size=2))


@given(st.dictionaries(names, values, max_size=12))
def test_every_value_is_kept_or_counted_and_nothing_raises(metrics):
    drops = DropLedger("r")
    clean = check_metrics(metrics, drops, "epoch", 0)
    assert all(isinstance(v, float) and re.match(METRIC_NAME_PATTERN, k) for k, v in clean.items())
    assert len(clean) + drops.dropped == len(metrics)  # nothing vanishes uncounted
    for name, value in metrics.items():
        if isinstance(name, str) and re.match(METRIC_NAME_PATTERN, name) and type(value) is float:
            assert clean[name] == value or (math.isnan(value) and math.isnan(clean[name]))
    DropReport.model_validate(drops.report().model_dump() if drops.report() else {})  # the contract's bounds


def test_the_fast_path_gives_the_same_answer_and_counts_nothing():
    drops = DropLedger("r")
    metrics = {"train/loss": 0.5, "epochs_seen": 3}
    assert check_metrics(metrics, drops) == check_metrics(metrics, drops) == {"train/loss": 0.5, "epochs_seen": 3.0}
    assert drops.report() is None


def test_examples_are_few_per_kind_and_bounded():
    drops = DropLedger("r")
    for i in range(50):
        drops.add("missing", 1, f"m{i}", f"'m{i}' was None")
        drops.add("renamed", 1, "acc@1", "'acc@1' renamed to 'acc_1'")  # one key: one example
    drops.add("not_a_number", 1, "x", "y" * 2000)
    report = drops.report()
    assert report.counts == {"missing": 50, "renamed": 50, "not_a_number": 1}
    assert [e for e in report.examples if "None" in e] == ["'m0' was None", "'m1' was None", "'m2' was None"]
    assert report.examples.count("'acc@1' renamed to 'acc_1'") == 1
    assert len(report.examples) == 5 and max(len(e) for e in report.examples) == 500
    assert drops.dropped == 51


def test_a_report_is_pending_until_sent_and_again_after_news():
    drops = DropLedger("r")
    assert drops.pending()[1] is None
    drops.add("missing", 1, "a", "a")
    version, report = drops.pending()
    assert report.counts == {"missing": 1}
    drops.sent(version)
    assert drops.pending()[1] is None
    drops.add("missing", 1, "a", "a")
    assert drops.pending()[1].counts == {"missing": 2}


def test_the_first_of_each_kind_is_logged_once_and_the_summary_says_all(caplog):
    import logging

    drops = DropLedger("run-1")
    with caplog.at_level(logging.WARNING, logger="epochstream.producer"):
        for _ in range(3):
            drops.add("missing", 1, "a", "'a' was None")
            drops.add("renamed", 1, "b@", "'b@' renamed to 'b_'")
    assert [r.getMessage().split(": ", 2)[2][:12] for r in caplog.records] == ["'a' was None", "'b@' renamed"]
    assert drops.summary().startswith("run run-1: 3 dropped, 3 renamed (missing 3, renamed 3): 'a' was None; ")
