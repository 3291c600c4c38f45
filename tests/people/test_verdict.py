"""`analyze`'s verdict: which epochs, which deltas, which recommendation. Pure, tested directly."""

from __future__ import annotations

from epochstream.cli.verdict import analyze, history
from schemas.trend_rules import TrendConfig
from schemas.trend_state import fold, verdict


def rows(train, val):
    out = []
    for epoch, (t, v) in enumerate(zip(train, val, strict=True)):
        metrics, markers = {"train/loss": t}, {}
        if v != v:  # NaN travels as null plus a marker
            metrics["val/loss"], markers["val/loss"] = None, "nan"
        else:
            metrics["val/loss"] = v
        out.append({"epoch": epoch, "metrics": metrics, "non_finite": markers})
    return out


OVERFIT = rows([2.0, 1.0, 0.6, 0.5, 0.4, 0.3, 0.25], [1.0, 0.7, 0.45, 0.5, 0.62, 0.8, 0.9])


def test_overfitting_names_the_best_epoch_and_the_change_since():
    summary = {"run_id": "r1", "status": "completed", "best_metric": "val/loss", "trends": {}}
    v = analyze(summary, OVERFIT)
    assert v.headline == "overfitting since epoch 2"
    assert v.judged == "val/loss (min), patience 5, min_delta 0.0001"
    assert v.evidence[0] == "best val/loss 0.45 at epoch 2; final 0.9 at epoch 6 (+0.45, 4 epochs later)"
    assert v.evidence[1] == "early stopping (patience 5, min_delta 0.0001): 4 epochs without improvement; it stops " \
                            "after 1 more epoch without one"
    assert any(line.startswith("val/loss 0.8 (median of the last 3 epochs) is +0.3 from its best level 0.5")
               and line.endswith("while train/loss fell 0.6 → 0.3") for line in v.evidence)
    assert v.recommendation == "use_checkpoint (epoch 2)"
    assert v.reason.startswith("use epoch 2's checkpoint: best val/loss 0.45 at epoch 2; final 0.9 at epoch 6")


def test_the_summary_s_flags_are_the_authority_and_the_evidence_is_theirs_too():
    config = TrendConfig()
    flags = verdict(fold(None, history(OVERFIT), config), config, "completed").model_dump()
    summary = {"run_id": "r1", "status": "completed", "trends": {**flags, "reason": "the read model's words"}}
    v = analyze(summary, OVERFIT)
    assert v.reason == "the read model's words" and v.evidence == flags["evidence"]
    older = {"run_id": "r1", "status": "completed", "trends": {"recommendation": "use_checkpoint",
                                                               "recommendation_epoch": 2, "reason": "old words"}}
    v = analyze(older, OVERFIT)  # an API without evidence: recomputed from the rows, same functions
    assert v.reason == "old words" and v.evidence == flags["evidence"]


def test_divergence_names_the_first_non_finite_epoch():
    nan = float("nan")
    v = analyze({"run_id": "r2", "status": "completed", "trends": {}},
                rows([3.0, 1.0, 0.5, nan, nan], [2.0, 1.2, 0.9, nan, nan]))
    assert v.headline == "diverged at epoch 3"
    assert "val/loss is nan from epoch 3; last finite 0.9 at epoch 2" in v.evidence
    assert v.recommendation == "investigate"
    assert v.reason.startswith("diverged: val/loss is nan from epoch 3; last finite 0.9 at epoch 2; best val/loss 0.9")


def test_failed_run_shows_its_error_and_where_the_traceback_is():
    summary = {"run_id": "r3", "status": "failed", "error": "RuntimeError: mat1 and mat2 shapes cannot be multiplied",
               "traceback": "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n",
               "trends": {"recommendation": "investigate"}}
    v = analyze(summary, rows([1.0, 0.8], [1.0, 0.9]))
    assert v.headline == "failed after epoch 1"
    assert "the run failed after epoch 1: RuntimeError: mat1 and mat2 shapes cannot be multiplied" in v.evidence
    assert "full traceback (3 lines): GET /runs/r3" in v.evidence
    assert v.recommendation == "investigate"
    local = analyze({**summary, "trends": {}}, rows([1.0, 0.8], [1.0, 0.9]))
    assert local.reason.startswith("the run failed after epoch 1: RuntimeError: mat1 and mat2 shapes")


def test_a_healthy_run_converges_and_continues():
    v = analyze({"run_id": "r4", "status": "running"}, rows([1.0, 0.8, 0.6], [1.1, 0.9, 0.7]))
    assert v.headline == "converging"
    assert v.recommendation == "continue"
    assert v.evidence[0] == "best val/loss 0.7 at epoch 2 (the latest epoch)"


def test_a_flat_curve_is_reported_as_such():
    flat = [0.5, 0.5, 0.5001, 0.5, 0.5002, 0.5001, 0.5, 0.5001]
    v = analyze({"run_id": "r5", "status": "running"}, rows([1.0 - 0.01 * e for e in range(8)], flat))
    assert v.headline.startswith("plateaued")
    assert any("flat within noise" in line for line in v.evidence)
    assert v.recommendation == "stop_early"  # patience used up: no improvement over 0.0001 since epoch 0


def test_stale_and_no_epochs():
    v = analyze({"run_id": "r6", "status": "running"}, [])
    assert v.headline == "no epochs yet" and v.evidence == [] and v.recommendation == "no_data"
    stale = analyze({"run_id": "r7", "status": "stale", "last_seen": "2026-01-02T03:04:05Z"},
                    rows([1.0, 0.8], [1.1, 0.9]))
    assert stale.headline == "stale; converging" and stale.recommendation == "investigate"
    assert stale.reason.startswith("the process went silent at 2026-01-02 03:04:05 UTC after epoch 1")
