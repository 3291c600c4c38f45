"""Non-finite floats spelt as JSON can hold them, in the documents we store with orjson (which has no NaN):
"nan", "inf", "-inf". Pure."""

from __future__ import annotations

import math

_TEXT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def safe(value: float) -> float | str:
    """A float as JSON can hold it: non-finite values become text."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def real(value: float | str | None) -> float | None:
    """The float `safe` spelt (None stays None)."""
    return _TEXT[value] if isinstance(value, str) else value
