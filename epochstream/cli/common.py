"""What every command shares: building the settings object from the environment plus flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epochstream.settings import Settings


def build_settings(**overrides: Any) -> Settings:
    """Environment first, then any flag the user actually gave."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in given:
        given["data_dir"] = Path(given["data_dir"])
    return Settings(**given)
