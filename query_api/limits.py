"""Every limit of the read API in one place: page sizes, long-poll cap, downsampling bounds."""

from __future__ import annotations

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_WAIT_S = 30.0  # a long poll never holds a connection longer than this; larger `wait=` values are capped
WATCH_INTERVAL_S = 0.05  # how often the one watcher task asks the read model whether anything was committed
MIN_POINTS = 2
MAX_POINTS = 100_000
DEFAULT_STEP_ROWS = 5_000  # /steps without max_points: one page of rows
MAX_STEP_ROWS = 100_000
MAX_METRICS = 64  # names in one `metrics=` filter
CACHE_ENTRIES = 4096  # parsed runs and series kept (summaries, histories, system series)
RESPONSE_CACHE_ENTRIES = 2048  # rendered bodies kept for hot polls
RESPONSE_CACHE_BYTES = 64 * 1024 * 1024
EMA_MAX_STEPS = 200_000  # `ema=` on /steps reads every step row of the run: refused (422) for longer runs
STEP_COLUMNS_CACHE_BYTES = 96 * 1024 * 1024  # step columns kept for smoothing (~8 MB per 100,000 steps, 3 metrics)
