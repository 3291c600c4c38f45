"""What can stop the local stack from starting or running."""

from __future__ import annotations

from epochstream.errors import TerminalError


class StackAlreadyRunning(TerminalError):
    """Another `epochstream up` owns this data directory."""


class StackFailed(TerminalError):
    """A component of the stack could not start."""
