"""The browser's security headers, on every answer of the app (an ASGI middleware): the dashboard
and the API docs are never framed by another site (clickjacking: `X-Frame-Options`, the
policy's `frame-ancestors`), load scripts, styles and data only from the hub itself
(`Content-Security-Policy`: the dashboard is plain files with no inline script or external
resource), a body is never sniffed into another type (`X-Content-Type-Options`), and no page's
address leaves the hub as a referrer (`Referrer-Policy`).

The API docs page (`/docs`, FastAPI's Swagger UI) starts Swagger with an inline script: its
policy allows inline scripts and styles for that page alone.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DASHBOARD_POLICY", "DOCS_POLICY", "SecurityHeaders"]

DASHBOARD_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_COMMON = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware: add the headers above to every HTTP answer (a header the route set
    itself is left as it is)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope.get("path") == "/docs" else DASHBOARD_POLICY
        added = (*_COMMON, (b"content-security-policy", policy.encode()))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in added if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
