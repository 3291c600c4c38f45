"""ETags and conditional requests. Pure: no I/O.

An ETag is a short hash of everything a response is made from: the identity of each file read
(inode, mtime_ns, size; files are replaced by atomic rename, so a new version is a new identity), any
read-time state such as a run turning stale, and the normalized query. Same data, same ETag, across
restarts; any change of the data, a new ETag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def make_etag(*parts: object) -> str:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def _tags(header: str) -> Iterable[str]:
    for item in header.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            tag = tag[2:]  # If-None-Match uses the weak comparison (RFC 9110 13.1.2)
        if tag:
            yield tag


def matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names this ETag (or is `*`): answer 304."""
    if not if_none_match:
        return False
    return any(tag == "*" or tag == etag for tag in _tags(if_none_match))
