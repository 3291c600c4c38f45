"""DuckDB's errors become ours, one line that says what to do (`workers.catalog_errors`), for real errors."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from workers.catalog_errors import CatalogBusy, CatalogQueryError, catalog_error


def _raised(con: duckdb.DuckDBPyConnection, sql: str) -> BaseException:
    with pytest.raises(duckdb.Error) as info:
        con.execute(sql)
    return info.value


def test_query_mistakes_are_terminal_one_line_errors(tmp_path):
    con = duckdb.connect()
    parse = catalog_error(_raised(con, "SELEC 1"))
    unknown = catalog_error(_raised(con, "SELECT * FROM no_such_view"))
    missing = catalog_error(_raised(con, f"SELECT * FROM read_parquet('{tmp_path}/nothing/*.parquet')"))
    for error in (parse, unknown, missing):
        assert isinstance(error, CatalogQueryError) and str(error).startswith("SQL error: ")
        assert "\n" not in str(error)
    assert "does not parse" in str(parse)
    assert "no_such_view" in str(unknown) and "the views: runs" in str(unknown)
    assert "file_search_path" in str(missing)
    path = tmp_path / "ro.duckdb"
    duckdb.connect(str(path)).close()
    read_only = catalog_error(_raised(duckdb.connect(str(path), read_only=True), "CREATE TABLE t AS SELECT 1"))
    assert isinstance(read_only, CatalogQueryError) and "read-only" in str(read_only)


def test_a_catalog_another_process_writes_is_busy_not_broken(tmp_path):
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        deadline = time.monotonic() + 10
        with pytest.raises(duckdb.IOException) as info:
            while time.monotonic() < deadline:
                duckdb.connect(str(path)).close()
        error = catalog_error(info.value)
        assert isinstance(error, CatalogBusy) and "retry" in str(error)
    finally:
        holder.kill()
        holder.wait()
    assert catalog_error(error) is error  # already ours
