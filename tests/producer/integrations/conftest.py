"""The integrations' tests train real Lightning, Hugging Face and Keras models on CPU, offline.

Set before any of those frameworks is first imported (this conftest loads before the test modules):
Keras picks its backend once, at import, and the Hub reads its offline switches at import.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402

from epochstream.settings import Settings  # noqa: E402
from producer.testing import RecordingPublisher  # noqa: E402


@pytest.fixture
def recorder() -> RecordingPublisher:
    """Events as a worker would decode them; no system samples in the way (one an hour)."""
    return RecordingPublisher(Settings(install_signal_handlers=False, system_interval_s=3600, exit_flush_s=1.0))
