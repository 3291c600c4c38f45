"""Shared plumbing for every epochstream process: settings, broker connection, data layout, the CLI."""

__version__ = "0.1.0"
