"""What each route's answer is made of, as a cheap tuple, and the ETag of it. Shared by the routes and the
304 fast path, so both always agree.

One indexed row of the read model gives every counter: `version` (anything of the run), `epochs`, `steps`
and `system` (that series). The generation of the database is part of every identity, so a rebuild never
repeats an ETag. `/runs/{id}` also changes when the run turns stale (a read-time status).
"""

from __future__ import annotations

import time

from query_api.etags import make_etag
from query_api.render import run_status
from query_api.store import RunStore

SERIES = ("epochs", "best", "steps", "system")


def now_us() -> int:
    return time.time_ns() // 1000


def run_identity(store: RunStore, run_id: str) -> tuple:
    v = store.versions(run_id)
    return ("run", v.generation, v.version, run_status(v, now_us()))


def series_identity(store: RunStore, run_id: str, kind: str) -> tuple:
    v = store.versions(run_id)
    counter = {"epochs": v.epochs, "best": v.epochs, "steps": v.steps, "system": v.system}[kind]
    return (kind, v.generation, counter)


def etag_of(run_id: str, identity: tuple) -> str:
    """The ETag names the version of the run's data, not the query: a client may fetch everything once and
    then long-poll with `since=` and that ETag (ETags are compared per URL, so sharing one is sound)."""
    return make_etag(*identity, run_id)
