"""The README's integration lines, run for real: inside a test's training, publishing through Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest

from epochstream.settings import Settings
from producer.run import default_publisher
from tests.conftest import ROOT, settings_env


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"no `<!-- example: {name} -->` python block in README.md"
    return match.group(1)


def run_readme_example(name: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                       names: dict[str, Any]) -> dict[str, Any]:
    """Exec the block with `names` defined (the test's model and data), the run published as a user's
    would be: the default publisher, from EPOCHSTREAM_* in the environment. Returns the block's names."""
    for key, value in settings_env(settings).items():
        if key.startswith("EPOCHSTREAM_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("EPOCHSTREAM_INSTALL_SIGNAL_HANDLERS", "false")
    monkeypatch.setenv("EPOCHSTREAM_SYSTEM_INTERVAL_S", "3600")
    scope = dict(names)
    try:
        exec(compile(readme_example(name), f"README.md:{name}", "exec"), scope)  # noqa: S102 - our own README
    finally:
        publisher = default_publisher(Settings())
        assert publisher.flush(10), "the README example's events did not reach Redis"
        publisher.close()
    return scope
