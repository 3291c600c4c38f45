"""Read-only by construction: a plain ASGI middleware in front of every route.

Only GET and HEAD get through; any other method is answered 405 (with `Allow`) on every path, before
routing, so no route can ever be reached for writing. HEAD is served by the GET route with the body
dropped, so the two always agree on status and headers (ETag included).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_api.encoding import dumps

ALLOWED = ("GET", "HEAD")


class ReadOnlyMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            await self.app(scope, receive, send)
        elif method == "HEAD":
            async def send_headers_only(message: Message) -> None:
                if message["type"] == "http.response.body":
                    if message.get("more_body", False):
                        return
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
                await send(message)

            await self.app({**scope, "method": "GET"}, receive, send_headers_only)
        else:
            body = dumps({"detail": f"method {method} is not allowed: this API is read-only (GET and HEAD only)"})
            await send({"type": "http.response.start", "status": 405,
                        "headers": [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
