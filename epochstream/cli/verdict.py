"""`epochstream analyze`'s reasoning: a verdict on one run and the evidence behind it. Pure, no I/O.

The run summary's trend flags (the read model's) are the authority for the recommendation and its
reason. The evidence lines come with them; from an API that does not send them, they are recomputed
here by the very functions the read model uses (`schemas.trend_state`), folded over the epoch rows the
API returns, so `analyze`, the API, the runs table and the web page quote the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from epochstream.cli.render import metric_value
from schemas.trend_rules import EpochRow, TrendConfig
from schemas.trend_state import fold, verdict


@dataclass
class Verdict:
    headline: str
    recommendation: str
    reason: str
    evidence: list[str] = field(default_factory=list)
    judged: str = ""  # what was monitored, and by which early-stopping rule


def history(rows: Sequence[Mapping[str, Any]]) -> list[EpochRow]:
    """Epoch rows as the API sends them (NaN/inf as null plus a `non_finite` marker) -> trend rows."""
    out = []
    for row in rows:
        metrics, markers = row.get("metrics") or {}, row.get("non_finite") or {}
        values = {name: metric_value(metrics, markers, name) for name in {*metrics, *markers}}
        out.append(EpochRow(int(row["epoch"]), {k: v for k, v in values.items() if v is not None}))
    return sorted(out, key=lambda r: r.epoch)


def config_of(summary: Mapping[str, Any]) -> TrendConfig:
    """What the run monitors: from its trend flags when the API sends them, else its best metric."""
    trends = summary.get("trends") or {}
    if trends.get("monitor"):
        return TrendConfig(monitor=trends["monitor"], mode=trends.get("mode"), patience=trends.get("patience"),
                           min_delta=trends.get("min_delta"))
    if summary.get("best_metric"):
        return TrendConfig(monitor=summary["best_metric"], mode=summary.get("best_mode"))
    return TrendConfig()


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def headline(flags: Mapping[str, Any], status: str, last_epoch: int | None) -> str:
    if status == "failed":
        return f"failed after epoch {last_epoch}" if last_epoch is not None else "failed before its first epoch"
    if last_epoch is None:
        text = "no epochs yet"
    elif flags.get("is_diverging"):
        at = flags.get("non_finite_epoch")
        text = f"diverged at epoch {at}" if at is not None else "diverging"
    elif flags.get("is_overfitting"):
        text = f"overfitting since epoch {flags.get('best_epoch')}"
    elif flags.get("is_plateaued"):
        text = f"plateaued (best epoch {flags.get('best_epoch')})"
    elif flags.get("epochs_since_improvement"):
        text = f"no improvement for {_epochs(flags['epochs_since_improvement'])}"
    else:
        text = "converging"
    return f"{status}; {text}" if status in ("interrupted", "stale") else text


def analyze(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict on a run from its summary and its epoch rows (as the API sends them)."""
    trends = summary.get("trends") or {}
    status = str(summary.get("status") or "running")
    past = history(rows)
    config = config_of(summary)
    local = verdict(fold(None, past, config), config, status, summary.get("error"),
                    silent_since=_when(summary.get("last_seen")) if status == "stale" else None).model_dump()
    flags = trends if trends.get("evidence") else {**local, **{k: v for k, v in trends.items() if v is not None}}
    evidence = list(trends.get("evidence") or local["evidence"])
    if status == "failed":
        error = (summary.get("error") or "").strip().splitlines()
        where = f" after epoch {past[-1].epoch}" if past else " before its first epoch"
        evidence.append(f"the run failed{where}: {error[0] if error else 'no error text'}")
        lines = len((summary.get("traceback") or "").splitlines())
        if lines:
            evidence.append(f"full traceback ({lines} lines): GET /runs/{summary.get('run_id')}")
    recommendation = str(trends.get("recommendation") or local["recommendation"])
    epoch = trends.get("recommendation_epoch") if trends.get("recommendation") else local["recommendation_epoch"]
    if recommendation == "use_checkpoint" and epoch is not None:
        recommendation = f"use_checkpoint (epoch {epoch})"
    reason = str(trends.get("reason") or local["reason"])
    rule = {k: flags.get(k) if flags.get(k) is not None else local[k] for k in ("monitor", "mode", "patience",
                                                                                  "min_delta")}
    judged = f"{rule['monitor']} ({rule['mode']}), patience {rule['patience']}, min_delta {rule['min_delta']:g}"
    return Verdict(headline=headline(flags, status, past[-1].epoch if past else None),
                   recommendation=recommendation, reason=reason, evidence=evidence, judged=judged)
