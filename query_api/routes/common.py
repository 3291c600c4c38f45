"""OpenAPI documentation of the answers every run route may give besides 200."""

from __future__ import annotations

from typing import Any

from query_api.models import ErrorPublic

_ETAG = {"ETag": {"description": "Changes exactly when the data behind the answer does.",
                  "schema": {"type": "string"}}}

RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: `If-None-Match` names the current ETag (or a long poll timed out).",
          "headers": _ETAG},
    401: {"model": ErrorPublic, "description": "The server requires a bearer token (EPOCHSTREAM_API_TOKEN)."},
    404: {"model": ErrorPublic, "description": "No such run."},
    503: {"model": ErrorPublic, "description": "A projection could not be read right now; retry."},
}
LIST_RESPONSES = {k: v for k, v in RESPONSES.items() if k != 404}
