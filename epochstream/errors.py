"""The root of every error epochstream raises on purpose.

Transient errors are worth retrying (a broker that is down, a file still being renamed); terminal ones
are not (bad input, bad configuration) and carry a message that tells the user what to do.
"""


from schemas.errors import EpochstreamError, TerminalError, TransientError

__all__ = ["BrokerUnavailable", "ConfigurationError", "EpochstreamError", "TerminalError", "TransientError"]


class BrokerUnavailable(TransientError):
    """Redis (or the embedded server) cannot be reached."""


class ConfigurationError(TerminalError):
    """A setting is missing or wrong."""
