"""What differs in the read model's SQL between its two databases, SQLite and PostgreSQL. Pure: strings only.

Every statement of the read model is written once, in the SQL both accept (`?` placeholders, `INSERT ...
ON CONFLICT`), against the SQLite DDL in `database`. A `Dialect` turns that into what its database wants:
- placeholders: `?` stays for sqlite3; psycopg takes `%s` (and a literal `%` doubled);
- DDL types: PostgreSQL's INTEGER is 32 bits (our timestamps are microseconds: BIGINT), REAL is 32 bits
  (DOUBLE PRECISION keeps SQLite's 64), BLOB is BYTEA, and TEXT is compared byte-wise (`COLLATE "C"`, as
  SQLite does), so keyset cursors and `ORDER BY run_id` agree between the two; WITHOUT ROWID is SQLite's;
- the few functions they name differently (a substring test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Dialect:
    name: str
    substring_test: str  # SQL true when the text of `{needle}` occurs in `{haystack}`

    def sql(self, statement: str) -> str:
        return statement if self.name == "sqlite" else _percent_style(statement)

    def contains(self, haystack: str, needle: str) -> str:
        return self.substring_test.format(haystack=haystack, needle=needle)

    def ddl(self, sqlite_ddl: str) -> str:
        return sqlite_ddl if self.name == "sqlite" else _postgres_ddl(sqlite_ddl)


@lru_cache(maxsize=512)  # the same few dozen statements, translated once each
def _percent_style(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA", "TEXT": 'TEXT COLLATE "C"'}


def _postgres_ddl(sqlite_ddl: str) -> str:
    text = re.sub(r"\s*WITHOUT ROWID", "", sqlite_ddl)
    return re.sub(r"\b(INTEGER|REAL|BLOB|TEXT)\b", lambda m: _TYPES[m.group(1)], text)


SQLITE = Dialect("sqlite", "instr({haystack}, {needle}) > 0")
POSTGRES = Dialect("postgresql", "strpos({haystack}, {needle}) > 0")
