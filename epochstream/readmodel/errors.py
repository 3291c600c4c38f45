"""Errors of the read model, split as everywhere here into transient (retry) and terminal."""

from __future__ import annotations

from epochstream.errors import EpochstreamError, TerminalError, TransientError


class ReadModelError(EpochstreamError):
    """Root of the read model's errors."""


class StaleFence(ReadModelError, TerminalError):
    """A newer drain holds this partition: this one's writes are refused (it was paused past its lock)."""

    def __init__(self, partition: int, fence: int, current: int):
        self.partition, self.fence, self.current = partition, fence, current
        super().__init__(f"partition {partition}: this drain's fence token {fence} is older than the read model's "
                         f"{current}; another drain took the partition over, so this one stops without writing")


class ReadModelBusy(ReadModelError, TransientError):
    """The database stayed locked or could not be opened for longer than the timeout; retry."""


class ReadModelMissing(ReadModelError, TransientError):
    """No read model has been written in this data directory yet."""

    def __init__(self, where: str):
        super().__init__(f"no read model at {where} yet: start the workers (`epochstream up` or `epochstream worker`)"
                         ", or run `epochstream rebuild` to make one from the log")


class ReadModelDamaged(ReadModelError, TransientError):
    """A run's row in the read model cannot be read (a damaged summary or fold state)."""

    def __init__(self, run_id: str, what: str):
        self.run_id = run_id
        super().__init__(f"the read model's row of run {run_id!r} cannot be read ({what}); the run's next events "
                         "repair it, and `epochstream rebuild` restores it from the log now")


class ReadModelUnavailable(ReadModelBusy):
    """The read model's database server cannot be reached, or dropped the connection; retry."""


class ReadModelConfigError(ReadModelError, TerminalError):
    """The read model's database refuses us for a reason a setting fixes (credentials, database, privileges)."""


class ReadModelRejected(ReadModelError, TerminalError):
    """The database refused a value of the batch itself (PostgreSQL text cannot hold a NUL character)."""
