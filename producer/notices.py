"""Problems are logged once, not per call: a broker that is away for an hour is one line in the log."""

from __future__ import annotations

import logging

log = logging.getLogger("epochstream.producer")


class Notices:
    """Remembers which kinds of problem it has already reported."""

    def __init__(self, logger: logging.Logger = log):
        self._logger = logger
        self._seen: set[str] = set()

    def warn(self, key: str, message: str) -> bool:
        """Log `message` if nothing under `key` was logged before; True if it was logged now."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._logger.warning("epochstream: %s", message)
        return True

    def forget(self, key: str) -> None:
        """Let `key` be reported again (the problem went away and may come back)."""
        self._seen.discard(key)
