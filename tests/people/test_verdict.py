"""`analyze`'s verdict: which epochs, which deltas, which recommendation. Pure, tested directly."""

from __future__ import annotations

from epochstream.cli.verdict import analyze


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


def test_overfitting_names_the_best_epoch_and_the_deltas():
    history = rows([2.0, 1.0, 0.6, 0.5, 0.4, 0.3], [1.0, 0.7, 0.45, 0.5, 0.62, 0.9])
    summary = {"run_id": "r1", "status": "completed", "best_metric": "val/loss",
               "trends": {"is_overfitting": True, "recommendation": "use_checkpoint", "recommendation_epoch": 2,
                          "reason": "val/loss rose"}}
    v = analyze(summary, history)
    assert v.headline == "overfitting since epoch 2"
    assert v.evidence[0] == "best val/loss 0.45 at epoch 2 (epochs 0..5)"
    assert v.evidence[1] == ("since epoch 2: val/loss +0.45 (0.45 → 0.9) over 3 epochs, "
                             "while train/loss −0.3 (0.6 → 0.3)")
    assert v.recommendation == "use_checkpoint (epoch 2)"
    assert v.reason == "val/loss rose"


def test_divergence_names_the_first_non_finite_epoch():
    nan = float("nan")
    v = analyze({"run_id": "r2", "status": "completed", "trends": {}},
                rows([3.0, 1.0, 0.5, nan, nan], [2.0, 1.2, 0.9, nan, nan]))
    assert v.headline == "diverged at epoch 3"
    assert "val/loss is non-finite from epoch 3; last finite 0.9 at epoch 2" in v.evidence
    assert v.recommendation == "use_checkpoint (epoch 2)"  # no trend flags: the fallback reading


def test_failed_run_shows_its_error_and_where_the_traceback_is():
    summary = {"run_id": "r3", "status": "failed", "error": "RuntimeError: mat1 and mat2 shapes cannot be multiplied",
               "traceback": "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n",
               "trends": {"recommendation": "investigate"}}
    v = analyze(summary, rows([1.0, 0.8], [1.0, 0.9]))
    assert v.headline == "failed after epoch 1"
    assert "the run failed after epoch 1: RuntimeError: mat1 and mat2 shapes cannot be multiplied" in v.evidence
    assert "full traceback (3 lines): GET /runs/r3" in v.evidence
    assert v.recommendation == "investigate"


def test_a_healthy_run_converges_and_continues():
    v = analyze({"run_id": "r4", "status": "running"}, rows([1.0, 0.8, 0.6], [1.1, 0.9, 0.7]))
    assert v.headline == "converging"
    assert v.recommendation == "continue"
    assert v.evidence == ["best val/loss 0.7 at epoch 2 (epochs 0..2)"]


def test_a_flat_curve_is_reported_as_such():
    v = analyze({"run_id": "r5", "status": "running", "trends": {"is_plateaued": True}},
                rows([1.0] * 6, [0.5, 0.5, 0.5001, 0.5, 0.5002, 0.5001]))
    assert any(line.startswith("last 5 epochs (1..5): val/loss moved within") for line in v.evidence)
    assert "plateaued" in v.headline


def test_no_epochs_yet():
    v = analyze({"run_id": "r6", "status": "running"}, [])
    assert v.headline == "no epochs yet" and v.evidence == [] and v.recommendation == "continue"
