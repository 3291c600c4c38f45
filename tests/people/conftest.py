"""Helpers for the people-facing tests: run `epochstream ...` as a real subprocess; publish and drain runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from epochstream.settings import Settings
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from epochstream.cli import main; main()"]


def epochstream(settings: Settings, *args: str, timeout: float = 60, env: dict | None = None,
                ) -> subprocess.CompletedProcess:
    run_env = settings_env(settings)
    run_env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    run_env.update(env or {})
    return subprocess.run([*CLI, *args], env=run_env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def one_clear_line(result: subprocess.CompletedProcess) -> str:
    """A user error: non-zero exit, one line on stderr that starts with `error:`, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def cli(settings):
    return lambda *args, **kw: epochstream(settings, *args, **kw)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one test module (Debian's binary, driven by path)."""
    from tests.people.browser import CHROMIUM, launch

    if CHROMIUM is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (Debian) to run the browser tests; .ci/run does this")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")
    with playwright.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
