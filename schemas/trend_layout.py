"""The shape of a stored trend state, shared by the fold (`schemas.trend_state`) and the judgement
(`schemas.trend_judge`): positions in a metric's statistics, and the JSON-safe spelling of non-finite
values (the state is stored with orjson, which has no NaN)."""

from __future__ import annotations

from schemas.finite import real, safe  # noqa: F401 - re-exported: the stored shape's spelling

# stats[metric]: [n, n_nan, n_zero, lo, lo_e, hi, hi_e, first, all the same as first, last, last_e, first
# non-finite epoch, epoch since which it is non-finite, last finite value, its epoch]
N, N_NAN, N_ZERO, LO, LO_E, HI, HI_E, FIRST, ALL_SAME, LAST, LAST_E, BAD_E, BAD_SINCE, OK, OK_E = range(15)


