"""`epochstream analyze`'s reasoning: a verdict on one run and the evidence behind it. Pure, no I/O.

The workers' trend flags (in the run summary) are the authority for the recommendation; this module
adds the facts a person needs to believe it: which epochs, which values, which deltas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from epochstream.cli.render import fmt, metric_series

PLATEAU_WINDOW = 5


@dataclass
class Verdict:
    headline: str
    recommendation: str
    reason: str
    evidence: list[str] = field(default_factory=list)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _delta(a: float, b: float) -> str:
    d = b - a
    return f"{'+' if d >= 0 else '−'}{fmt(abs(d))} ({fmt(a)} → {fmt(b)})"


def _best(epochs: Sequence[int], values: Sequence[float | None]) -> tuple[int, float] | None:
    best = None
    for e, v in zip(epochs, values, strict=True):
        if _finite(v) and (best is None or v < best[1]):
            best = (e, v)
    return best


def first_non_finite(epochs: Sequence[int], values: Sequence[float | None]) -> int | None:
    for e, v in zip(epochs, values, strict=True):
        if v is not None and not math.isfinite(v):
            return e
    return None


def analyze(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict on a run from its summary and its epoch rows (as the API sends them)."""
    trends = summary.get("trends") or {}
    status = summary.get("status") or "running"
    metric = summary.get("best_metric") or ("val/loss" if any("val/loss" in (r.get("metrics") or {})
                                                              or "val/loss" in (r.get("non_finite") or {})
                                                              for r in rows) else "train/loss")
    epochs = [int(r["epoch"]) for r in rows]
    watched = metric_series(rows, metric)
    train = metric_series(rows, "train/loss")
    evidence: list[str] = []
    headline = "no epochs yet" if not rows else "converging"

    best = _best(epochs, watched)
    if best:
        evidence.append(f"best {metric} {fmt(best[1])} at epoch {best[0]} (epochs {epochs[0]}..{epochs[-1]})")
    bad_at = first_non_finite(epochs, watched)
    if bad_at is not None:
        before = [(e, v) for e, v in zip(epochs, watched, strict=True) if e < bad_at and _finite(v)]
        last_ok = f"; last finite {fmt(before[-1][1])} at epoch {before[-1][0]}" if before else ""
        evidence.append(f"{metric} is non-finite from epoch {bad_at}{last_ok}")
        headline = f"diverged at epoch {bad_at}"
    elif best and epochs and best[0] < epochs[-1]:
        i_best, i_last = epochs.index(best[0]), len(epochs) - 1
        since = epochs[-1] - best[0]
        line = f"since epoch {best[0]}: {metric} {_delta(best[1], watched[i_last])} over {since} epochs"
        if metric != "train/loss" and _finite(train[i_best]) and _finite(train[i_last]):
            line += f", while train/loss {_delta(train[i_best], train[i_last])}"
            if train[i_last] < train[i_best] and watched[i_last] > best[1]:
                headline = f"overfitting since epoch {best[0]}"
        evidence.append(line)
        if headline == "converging":
            headline = f"no improvement for {since} epochs"
    if len(epochs) >= PLATEAU_WINDOW and bad_at is None:
        window = [v for v in watched[-PLATEAU_WINDOW:] if _finite(v)]
        spread = max(window) - min(window) if len(window) == PLATEAU_WINDOW else math.inf
        # Only worth saying when the curve is flat: within 1% of its level (or the workers say plateau).
        if spread < math.inf and (trends.get("is_plateaued") or spread <= 0.01 * abs(sum(window) / len(window))):
            evidence.append(f"last {PLATEAU_WINDOW} epochs ({epochs[-PLATEAU_WINDOW]}..{epochs[-1]}): "
                            f"{metric} moved within {fmt(spread)}")
    for name, why in sorted((trends.get("suspect_metrics") or {}).items()):
        evidence.append(f"{name} looks wrong: {why}")
    if status == "failed":
        error = (summary.get("error") or "no error text").strip().splitlines()
        where = f" after epoch {epochs[-1]}" if epochs else " before its first epoch"
        evidence.append(f"the run failed{where}: {error[-1] if error else ''}")
        lines = len((summary.get("traceback") or "").splitlines())
        if lines:
            evidence.append(f"full traceback ({lines} lines): GET /runs/{summary.get('run_id')}")
        headline = f"failed{where}"
    elif status in ("interrupted", "stale"):
        headline = f"{status}; {headline}"
    if trends.get("is_plateaued") and "plateau" not in headline and status != "failed":
        headline = f"{headline}; plateaued"

    recommendation = str(trends.get("recommendation") or _fallback_recommendation(status, bad_at, best, epochs))
    if recommendation == "use_checkpoint":
        epoch = trends.get("recommendation_epoch", best[0] if best else None)
        if epoch is not None:
            recommendation = f"use_checkpoint (epoch {epoch})"
    reason = str(trends.get("reason") or "")
    return Verdict(headline=headline, recommendation=recommendation, reason=reason, evidence=evidence)


def _fallback_recommendation(status: str, bad_at: int | None, best: tuple[int, float] | None,
                             epochs: Sequence[int]) -> str:
    """Only when the summary carries no trend flags (an older worker): the obvious reading of the data."""
    if status == "failed":
        return "investigate"
    if bad_at is not None or (best and epochs and epochs[-1] - best[0] >= 3):
        return "use_checkpoint" if best else "investigate"
    return "continue"
