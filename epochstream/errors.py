"""The root of every error epochstream raises on purpose.

Transient errors are worth retrying (a broker that is down, a file still being renamed); terminal ones
are not (bad input, bad configuration) and carry a message that tells the user what to do.
"""


from schemas.errors import EpochstreamError, TerminalError, TransientError

__all__ = ["BrokerUnavailable", "ConfigurationError", "EpochstreamError", "LogStoreUnavailable", "TerminalError",
           "TransientError"]


class BrokerUnavailable(TransientError):
    """Redis (or the embedded server) cannot be reached."""


class LogStoreUnavailable(TransientError):
    """The object store holding the log cannot be reached, or refused a request (a stopped server, a network
    partition, wrong credentials): what `workers.log_store` turns the S3 client's errors into. Retried: a
    drain keeps its batch pending, never dead-letters it."""


class ConfigurationError(TerminalError):
    """A setting is missing or wrong."""
