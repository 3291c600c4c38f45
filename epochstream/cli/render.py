"""Turning API answers into terminal text: sparklines, numbers, flags. Pure functions, no I/O.

The API sends a NaN or infinite metric as null plus a `non_finite` marker; `metric_series` turns that
back into float NaN/inf so a diverging curve is drawn as such (a `×`), not as a gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

TERMINAL = ("completed", "failed", "interrupted")  # a run with one of these statuses will not change again
BLOCKS = "▁▂▃▄▅▆▇█"
NON_FINITE_MARK = "×"
MISSING_MARK = " "
_MARKER_VALUES = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}


def metric_value(metrics: Mapping[str, Any], non_finite: Mapping[str, str], name: str) -> float | None:
    """One metric of an API epoch row, non-finite markers restored; None when absent."""
    if name in non_finite:
        return _MARKER_VALUES.get(str(non_finite[name]).lower(), math.nan)
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def metric_series(epochs: Sequence[Mapping[str, Any]], name: str) -> list[float | None]:
    return [metric_value(e.get("metrics") or {}, e.get("non_finite") or {}, name) for e in epochs]


def sparkline(values: Sequence[float | None], width: int = 40) -> str:
    """The last `width` values as block characters scaled between their finite min and max."""
    values = list(values)[-width:] if width > 0 else []
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    out = []
    for v in values:
        if v is None:
            out.append(MISSING_MARK)
        elif not math.isfinite(v):
            out.append(NON_FINITE_MARK)
        elif hi == lo:
            out.append(BLOCKS[len(BLOCKS) // 2])
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int((v - lo) / (hi - lo) * len(BLOCKS)))])
    return "".join(out)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: `nan`/`inf` spelled out, None as `-`."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def summary_value(summary: Mapping[str, Any], name: str) -> Any:
    """A top-level summary field with its non-finite marker applied (`best_value`, `final_loss`)."""
    markers = summary.get("non_finite") or {}
    if isinstance(markers, Mapping) and name in markers:
        return _MARKER_VALUES.get(str(markers[name]).lower(), math.nan)
    return summary.get(name)


def flags(trends: Mapping[str, Any] | None) -> list[str]:
    """The trend flags that are up, in words."""
    if not trends:
        return []
    out = []
    if trends.get("is_diverging"):
        out.append("diverging")
    if trends.get("is_overfitting"):
        out.append("overfitting")
    if trends.get("is_plateaued"):
        out.append("plateau")
    since = trends.get("epochs_since_improvement")
    if isinstance(since, int) and since > 0:
        out.append(f"{since} epoch{'s' if since != 1 else ''} since improvement")
    for metric, why in sorted((trends.get("suspect_metrics") or {}).items()):
        out.append(f"{metric}: {why}")
    return out


TREND_KEYS = ("epochs_since_improvement", "is_plateaued", "is_overfitting", "is_diverging", "suspect_metrics",
              "recommendation", "recommendation_epoch", "reason")


def trends_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run's trend flags: the summary's `trends` object, or the flat fields of a `/runs` list row."""
    if isinstance(row.get("trends"), Mapping):
        return dict(row["trends"])
    return {k: row[k] for k in TREND_KEYS if k in row}


def flags_text(trends: Mapping[str, Any] | None) -> str:
    return ", ".join(flags(trends)) or "-"


def recommendation_text(trends: Mapping[str, Any] | None) -> str:
    if not trends or not trends.get("recommendation"):
        return "-"
    text = str(trends["recommendation"]).replace("_", " ")
    if trends.get("recommendation_epoch") is not None and trends["recommendation"] in ("use_checkpoint",
                                                                                      "stop_early", "stop_soon"):
        text += f" (epoch {trends['recommendation_epoch']})"
    return text


def short_id(run_id: str, n: int = 12) -> str:
    return run_id[:n]


def system_series(payload: Mapping[str, Any] | None) -> dict[str, list[float | None]]:
    """GPU memory (MB) and utilisation (%) of the first GPU over time, from a `/runs/{id}/system` answer,
    whose points carry flat `values` ("gpu0/mem_allocated_mb", ...); samples without GPU 0 are skipped."""
    mem: list[float | None] = []
    util: list[float | None] = []
    for point in (payload or {}).get("points") or []:
        values = point.get("values") or {}
        if any(k.startswith("gpu0/") for k in values):
            mem.append(values.get("gpu0/mem_allocated_mb"))
            util.append(values.get("gpu0/utilization_pct"))
    return {"mem": mem, "util": util}
