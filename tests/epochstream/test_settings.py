"""The one settings object: environment variables, and a README that documents every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from epochstream.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_environment_variables_are_read_with_the_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("EPOCHSTREAM_PARTITIONS", "16")
    monkeypatch.setenv("EPOCHSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EPOCHSTREAM_API_TOKEN", "s3cret")
    settings = Settings()
    assert settings.partitions == 16 and settings.data_dir == tmp_path
    assert settings.api_token.get_secret_value() == "s3cret" and "s3cret" not in repr(settings)


def test_bad_values_are_refused_with_the_field_named(monkeypatch):
    monkeypatch.setenv("EPOCHSTREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_every_setting_is_documented_in_the_readme():
    documented = set(re.findall(r"`EPOCHSTREAM_([A-Z_]+)`", README.read_text()))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f"README's configuration table lacks EPOCHSTREAM_{sorted(missing)}"
