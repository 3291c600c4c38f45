"""The labelled curve corpus (tests/fixtures/curves/corpus.json, made by generate.py; never retrained here):
precision and recall of `is_overfitting`, `is_plateaued` and `is_diverging` at each curve's last epoch.

Each curve is labelled by how it was made (the recipe), not by what the functions answer. The `holdout`
split was generated once the definitions were final and never tuned on; both splits are reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import fold, verdict

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "curves" / "corpus.json"
FLAGS = ("is_overfitting", "is_plateaued", "is_diverging")
FLOOR = 0.95
_TEXT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def load() -> list[dict]:
    return json.loads(CORPUS.read_text())["curves"]


def judged(curve: dict):
    rows = [EpochRow(e["epoch"], {k: _TEXT[v] if isinstance(v, str) else v for k, v in e["metrics"].items()})
            for e in curve["epochs"]]
    config = TrendConfig(**curve["config"])
    return verdict(fold(None, rows, config), config, status="completed")


def scores(curves: list[dict]) -> tuple[dict[str, tuple[float, float, int, int, int]], list[str]]:
    counts = {flag: [0, 0, 0] for flag in FLAGS}  # true positives, false positives, false negatives
    wrong = []
    for curve in curves:
        flags = judged(curve)
        for flag in FLAGS:
            got, want = getattr(flags, flag), curve["labels"][flag]
            if got and want:
                counts[flag][0] += 1
            elif got != want:
                counts[flag][1 if got else 2] += 1
                wrong.append(f"{curve['name']}: {flag}={got}, made as {want} ({curve['how']}) -- {flags.reason}")
    out = {}
    for flag, (tp, fp, fn) in counts.items():
        out[flag] = (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0, tp, fp, fn)
    return out, wrong


def report(title: str, result: dict) -> str:
    lines = [title] + [f"  {flag:15s} precision {p:.3f} recall {r:.3f} (tp {tp}, fp {fp}, fn {fn})"
                       for flag, (p, r, tp, fp, fn) in result.items()]
    return "\n".join(lines)


def test_the_corpus_is_big_enough_and_mostly_real_trainings():
    curves = load()
    real = [c for c in curves if c["source"] == "pytorch"]
    assert len(curves) >= 100 and len(real) > len(curves) / 2
    recipes = {c["recipe"].split("/")[0] for c in real}
    assert {"underfit", "well", "overfit", "lr-high", "lr-low", "lr-drop"} <= recipes
    for flag in FLAGS:  # enough positives and negatives for each rate to mean something
        positives = sum(c["labels"][flag] for c in curves)
        assert positives >= 20 and len(curves) - positives >= 20, flag


@pytest.mark.parametrize("split", ["dev", "holdout", None])
def test_precision_and_recall_of_each_flag(split, capsys):
    curves = [c for c in load() if split is None or c["split"] == split]
    result, wrong = scores(curves)
    with capsys.disabled():
        print("\n" + report(f"trend flags on {len(curves)} curves ({split or 'all'})", result))
    for flag, (precision, recall, *_) in result.items():
        assert precision >= FLOOR and recall >= FLOOR, (flag, "\n".join(wrong))


def test_the_committed_synthetic_curves_are_what_the_generator_makes():
    from tests.fixtures.curves import synthetic

    committed = [c for c in load() if c["source"] == "synthetic"]
    assert committed == json.loads(json.dumps(synthetic.json_safe(synthetic.curves())))


def test_the_recommendation_of_a_finished_run_follows_its_flags():
    for curve in load():
        if not curve["epochs"]:
            continue
        flags = judged(curve)
        if flags.is_diverging:
            assert flags.recommendation == "investigate", curve["name"]
        elif flags.best_epoch is not None:
            assert flags.recommendation == "use_checkpoint" and flags.recommendation_epoch == flags.best_epoch
