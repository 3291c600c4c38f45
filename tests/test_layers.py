"""Who may import whom (STYLE.md, "Layers"): every module's imports, found by walking its syntax tree (lazy
imports inside functions count too), checked against the table; and `import producer` loads no heavy engine."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

OURS = ("schemas", "producer", "workers", "query_api", "epochstream")
# package -> modules it must never import (a prefix matches the module and everything under it)
NEVER = {
    "producer": ("workers", "query_api", "pyarrow", "duckdb", "fastapi"),
    "workers": ("query_api",),
    "query_api": ("workers", "producer"),
    "epochstream.readmodel": ("workers", "query_api", "producer", "duckdb", "fastapi"),
    # what differs between the two databases is strings only: it imports neither driver
    "epochstream.readmodel.dialect": ("sqlite3", "psycopg", "workers", "query_api", "producer"),
    # the plumbing the producer imports: what training processes load
    "epochstream.atomic": ("workers", "query_api", "producer", "pyarrow", "duckdb", "fastapi", "redis"),
    "epochstream.agreement": ("workers", "query_api", "producer", "pyarrow", "duckdb", "fastapi"),
    "epochstream.broker_errors": ("workers", "query_api", "producer", "pyarrow", "duckdb", "fastapi"),
    "epochstream.settings": ("workers", "query_api", "producer", "pyarrow", "duckdb", "fastapi", "redis"),
}
SCHEMAS_MAY = ("pydantic", "pydantic_core", "orjson", "schemas")  # besides the standard library
# Imports of ours from schemas that are allowed anyway: none (the error roots live in schemas.errors, and
# epochstream.errors re-exports them).
SCHEMAS_KNOWN: list[str] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` (module `module`) imports, relative imports resolved, `from a import b` as both
    a and a.b (b may be a module)."""
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imports_of(path: Path) -> set[str]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def modules(package: str) -> list[Path]:
    single = ROOT / f"{package.replace('.', '/')}.py"
    files = [single] if single.exists() else sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    assert files, f"no modules under {package}"
    return files


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(package: str, allowed) -> list[str]:
    return sorted(f"{module_name(path)} imports {name}" for path in modules(package) for name in imports_of(path)
                  if not allowed(name))


@pytest.mark.parametrize("package", sorted(NEVER))
def test_no_package_imports_what_its_layer_forbids(package):
    forbidden = NEVER[package]
    assert violations(package, lambda name: not any(within(name, f) for f in forbidden)) == []


def test_schemas_imports_only_the_standard_library_pydantic_and_orjson():
    def allowed(name: str) -> bool:
        top = name.split(".")[0]
        return top in sys.stdlib_module_names or top == "__future__" or any(within(name, m) for m in SCHEMAS_MAY)
    assert violations("schemas", allowed) == SCHEMAS_KNOWN


def test_the_walker_sees_every_kind_of_import():
    """The checks above can fail: each form of import is seen, at module level or inside a function."""
    source = ("import pyarrow.parquet as pq\nfrom workers import drain\nfrom ..query_api.store import X\n"
              "def f():\n    from . import run\n    import duckdb\n    from .sub.mod import *\n")
    assert imports_in(source, "producer.probe") == {
        "pyarrow.parquet", "workers", "workers.drain", "query_api.store", "query_api.store.X", "producer",
        "producer.run", "duckdb", "producer.sub.mod"}
    assert "epochstream.readmodel.values" in imports_in("from .values import x", "epochstream.readmodel", True)


def test_import_producer_loads_no_pyarrow_duckdb_or_fastapi():
    code = ("import json, sys; import producer; from producer import start_run, Publisher, EpochAccumulator; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pyarrow', 'duckdb', 'fastapi', 'starlette', 'workers', 'query_api'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == []


def test_the_sqlite_read_model_loads_no_postgresql_driver():
    """psycopg is imported only when EPOCHSTREAM_READ_MODEL_URL names a PostgreSQL server."""
    code = ("import json, sys, tempfile, pathlib; from epochstream.readmodel import ReadModelWriter; "
            "from epochstream.readmodel.reader import ReadModelReader; d = pathlib.Path(tempfile.mkdtemp()); "
            "ReadModelWriter.open(d).close(); ReadModelReader(d).tracking(); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == []


HEAVY_FOR_THE_CLI = ("pyarrow", "duckdb", "fastapi", "starlette", "torch", "rq", "httpx", "pydantic", "redis")


def test_the_cli_imports_no_engine_until_a_command_runs():
    """`epochstream --help` imports every command module: they import their engines inside the commands."""
    code = ("import json, sys; import epochstream.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules "
            f"if m.split('.')[0] in {HEAVY_FOR_THE_CLI!r}}})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == []
    listed = subprocess.run([sys.executable, "-c", "from epochstream.cli import main; main()", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr[-2000:]
    from epochstream.cli import app

    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    assert len(names) > 10 and [n for n in names if f" {n} " not in listed.stdout] == []  # every one listed
