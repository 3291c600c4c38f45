"""Strict JSON for floats: a NaN or infinite metric becomes null plus a marker saying which it was."""

from __future__ import annotations

import math
from collections.abc import Mapping


def float_or_null(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def non_finite_marker(value: float | None) -> str | None:
    if value is None or math.isfinite(value):
        return None
    return "nan" if math.isnan(value) else ("+inf" if value > 0 else "-inf")


def strict_metrics(metrics: Mapping[str, float]) -> tuple[dict[str, float | None], dict[str, str]]:
    """(values with non-finite as None, {name: "nan"|"+inf"|"-inf"} for those)."""
    values = {k: float_or_null(v) for k, v in metrics.items()}
    markers = {k: m for k, v in metrics.items() if (m := non_finite_marker(v))}
    return values, markers
