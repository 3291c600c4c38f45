"""PostgreSQL errors in our words: the one place a psycopg error is classified and explained.

`postgres_error(exc, where)` turns what psycopg raised into a read-model error whose message says what
happened and what to do, classified by SQLSTATE class (never by message text):
- the server away, a dropped connection, a serialization failure or deadlock, a full disk, an operator's
  cancel or shutdown: `ReadModelUnavailable` (transient: the drain keeps the batch pending and retries);
- credentials, a missing database, missing privileges: `ReadModelConfigError` (a setting to fix);
- a value the database cannot hold (a NUL character in text): `ReadModelRejected`, counted against the batch;
- a table or schema that is not there: `ReadModelMissing` (a rebuild swapped, or nothing was written yet).
A refused *connection* is the exception: libpq reports no SQLSTATE for it, only its text, so
`connect_error` tells a server that answered and refused us (FATAL: credentials, database) from one that
is away or starting, shutting down or full, by libpq's severity word and those few states' fixed phrases.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg

from epochstream.readmodel.errors import (
    ReadModelConfigError,
    ReadModelError,
    ReadModelMissing,
    ReadModelRejected,
    ReadModelUnavailable,
)

SERVER_BUSY = ("starting up", "shutting down", "too many", "recovery mode")  # FATAL, yet retry (57P03, 53300)
TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")  # connection, rollback, resources, operator, system
CONFIG_CLASSES = ("28", "3D", "42501")  # authorization, catalog name, privilege


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def postgres_error(exc: BaseException, where: str) -> ReadModelError:
    """Our error for `exc`, raised by psycopg while using the read model at `where` (a masked URL)."""
    if isinstance(exc, ReadModelError):
        return exc
    line = _first_line(exc)
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, pg.UndefinedTable | pg.InvalidSchemaName):
        return ReadModelMissing(where)
    if state.startswith(CONFIG_CLASSES):
        return ReadModelConfigError(f"PostgreSQL at {where} refused the read model ({line}): check the user, "
                                    f"password, database name and its privileges in EPOCHSTREAM_READ_MODEL_URL")
    if isinstance(exc, psycopg.DataError) or state.startswith("22"):
        return ReadModelRejected(f"PostgreSQL at {where} cannot store a value of this batch ({line}); the "
                                 f"entries stay pending and are dead-lettered after their deliveries run out")
    if state.startswith(TRANSIENT_CLASSES) or (isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
                                               and not state):
        return ReadModelUnavailable(f"the read model's PostgreSQL at {where} is unavailable ({line}); the "
                                    f"work is retried: check that the server is up and reachable")
    return ReadModelConfigError(f"PostgreSQL at {where} failed a read-model statement ({line}); if this "
                                f"persists, run `epochstream rebuild` or report it with this message")


def connect_error(exc: BaseException, where: str) -> ReadModelError:
    """Our error for a failure of `psycopg.connect` (see the module's docstring)."""
    line = _first_line(exc)
    if isinstance(exc, psycopg.OperationalError) and not getattr(exc, "sqlstate", None):
        text = str(exc)
        if "FATAL:" in text and not any(phrase in text for phrase in SERVER_BUSY):
            reason = text.split("FATAL:", 1)[1].strip().splitlines()[0]
            return ReadModelConfigError(f"PostgreSQL at {where} refused the connection ({reason}): check the "
                                        f"user, password, database name and its privileges in "
                                        f"EPOCHSTREAM_READ_MODEL_URL")
        return ReadModelUnavailable(f"the read model's PostgreSQL at {where} is unavailable ({line}); the work "
                                    f"is retried: check that the server is up and reachable")
    return postgres_error(exc, where)
