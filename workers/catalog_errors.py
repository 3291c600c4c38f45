"""DuckDB errors in our words: the one place a catalog (DuckDB) library error is classified and explained.

`catalog_error(exc)` turns what DuckDB raised while opening the catalog or running an analyst's query into
one of our errors whose one-line message says what happened and what to do; users of `epochstream sql`
see these, never DuckDB's multi-line text alone. A failure to open the catalog because another process
writes it is transient (`CatalogBusy`); everything else is terminal: a mistake in the query, a view whose
files are not where the catalog says, a read-only session asked to write.
"""

from __future__ import annotations

import duckdb

from epochstream.errors import EpochstreamError, TerminalError, TransientError

__all__ = ["CatalogBusy", "CatalogQueryError", "catalog_error"]

VIEWS = "runs, trends, epochs, epoch_metrics, steps, step_metrics, system, run_config, dead_letters, quarantine"


class CatalogBusy(TransientError):
    """The catalog file is being created or upgraded by another process right now; retry in a moment."""


class CatalogQueryError(TerminalError):
    """The query (or the catalog it ran on) cannot succeed as it is; the message says what to change."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def catalog_error(exc: BaseException) -> EpochstreamError:
    """Our error for `exc` (already ours: returned as it is)."""
    if isinstance(exc, EpochstreamError):
        return exc
    line = _first_line(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in line.lower():
        return CatalogBusy(f"the catalog is open for writing by another process ({line}); retry in a moment")
    if isinstance(exc, duckdb.IOException) and "No files found" in line:
        return CatalogQueryError(f"SQL error: a view's files are not where the catalog says ({line}); start "
                                 f"DuckDB in the data directory or `SET file_search_path` to it")
    if isinstance(exc, duckdb.CatalogException):
        return CatalogQueryError(f"SQL error: {line} (the views: {VIEWS})")
    if isinstance(exc, duckdb.ParserException):
        return CatalogQueryError(f"SQL error: the query does not parse: {line}")
    if isinstance(exc, duckdb.InvalidInputException) and "read-only" in line:
        return CatalogQueryError(f"SQL error: the catalog is read-only for queries ({line}); copy results out "
                                 f"with your own DuckDB session instead")
    return CatalogQueryError(f"SQL error: {line}")
