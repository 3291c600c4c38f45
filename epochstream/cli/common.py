"""What every command shares: building the settings object from the environment plus flags (pydantic is
imported when a command runs, not when `epochstream --help` lists the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochstream.settings import Settings


def build_settings(**overrides: Any) -> Settings:
    """Environment first, then any flag the user actually gave. A bad value is a one-line ConfigurationError."""
    from pydantic import ValidationError

    from epochstream.errors import ConfigurationError
    from epochstream.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in given:
        given["data_dir"] = Path(given["data_dir"])
    try:
        return Settings(**given)
    except ValidationError as exc:
        bad = "; ".join(f"EPOCHSTREAM_{'_'.join(map(str, e['loc'])).upper()} (or its flag) = {e.get('input')!r}: "
                        f"{e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"bad setting {bad}") from None
