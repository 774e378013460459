"""Errors as RFC 9457 problem details, and a limit on request bodies.

Every error of the API answers `application/problem+json`:

    {"type": "https://hazardhub.dev/problems/conflict", "title": "Conflict", "status": 409,
     "detail": "cannot close: the alarm is still active", "instance": "/api/v1/alarms/7/disposal"}

A request whose fields do not validate adds `errors`, one entry per field (`loc`, `msg`,
`type`), and its `detail` names them. A body over the limit is refused with 413 before it is
read whole; a body that says nothing of its length is counted as it arrives. A route that fails
unexpectedly answers 500 as a problem too (`Unhandled`), saying nothing of the failure: its
traceback and message go to the log, never to the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.metrics import Metrics
from ingest.store.base import StoreError

__all__ = ["API_ERRORS", "BodyLimit", "Unhandled", "install_problem_handlers", "problem"]

PROBLEM_TYPE = "https://hazardhub.dev/problems/"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem(
    status: int,
    detail: str,
    instance: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {
        "type": PROBLEM_TYPE + _slug(status),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _errors(items: Any) -> list[dict[str, Any]]:
    out = []
    for e in items:
        if isinstance(e, dict):
            out.append({k: e[k] for k in ("loc", "msg", "type") if k in e})
    return jsonable_encoder(out)  # type: ignore[no-any-return]


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [
        f"{'.'.join(str(x) for x in e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in errors
    ]
    return "; ".join(parts[:5]) + (f" (and {len(parts) - 5} more)" if len(parts) > 5 else "")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        headers = dict(exc.headers or {})
        if isinstance(detail, list):  # field errors raised by a route
            errors = _errors(detail)
            return problem(exc.status_code, _summary(errors), request.url.path, errors=errors)
        return problem(exc.status_code, str(detail), request.url.path, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _errors(exc.errors())
        return problem(422, _summary(errors), request.url.path, errors=errors)

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        # the store's own message may name its address; it goes to the log, not the client
        log.warning("%s %s: the store failed: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "the time-series store does not answer: readings cannot be read now (ingest and "
            "alarms go on, and readings wait in the hub's buffer); try again shortly",
            request.url.path,
            headers={"Retry-After": "10"},
        )


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 (problem details)."""

    def __init__(self, app: ASGIApp, max_bytes: int = 1 << 20) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        path = str(scope.get("path", ""))
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send, path)
            return
        seen = 0
        too_big = False

        async def counted() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if too_big and not started:
                return  # the app's answer to a cut body is dropped: 413 goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, watch)
        if too_big and not started:
            await self._refuse(scope, receive, send, path)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        response = problem(413, f"the request body is larger than {self.max_bytes} bytes", path)
        await response(scope, receive, send)


API_ERRORS = "hazardhub_api_errors_total"


def _route(scope: Scope) -> str:
    """The route a request was matched to, as declared (`/api/v1/hazards/{hazard_id}`: not the
    path asked, whose ids would make a series each); `unmatched` before any route took it."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class Unhandled:
    """ASGI middleware: an exception a route did not handle answers 500 as a problem, from
    inside the app's other middleware (the security headers, `api.headers`), where Starlette's
    own answer to it came from outside them all, without those headers. The body says nothing
    of the exception (its message may carry a store's address or password); the exception is
    raised on after the answer, for the server to log with its traceback, and the 500 is
    counted in `metrics` (`hazardhub_api_errors_total`, by route: a bug, which no other counter
    showed). An exception after the answer began (a stream cut) is only raised on: the client
    sees the answer end."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not started:
                if self.metrics is not None:
                    self.metrics.inc(API_ERRORS, route=_route(scope))
                response = problem(
                    500,
                    "the hub failed to answer this request; the reason is in the hub's log",
                    str(scope.get("path", "")),
                )
                await response(scope, receive, send)
            raise
