"""The live stream route, `/stream` (server-sent events of the `api.stream.Broadcaster`), added
to the app's `/api/v1` router by `stream_route` (`api.app`). Split from `api.app`; the route moved
as it was.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import KeyWatch, Principal, current_key_watch
from api.context import Caller, Ctx, narrowed
from api.stream import Broadcaster, Subscription, TooManyStreamsError
from telemetry.notifyconfig import TIERS  # what `tier=` filters on: blue ... red

_TIER_LIST = f"^({'|'.join(TIERS)})(,({'|'.join(TIERS)}))*$"
_ID = re.compile(r"[0-9]{1,18}")  # a journal event id (below 2**63)

__all__ = ["stream_route"]


def _only(caller: Principal, only: frozenset[str] | None) -> Principal:
    """The caller seeing `only` these tenants of its own (None: all its own): a stream asked
    for one tenant. The key as it is now still decides: a tenant it no longer sees is not sent."""
    if only is None:
        return caller
    return dataclasses.replace(
        caller, tenants=only if caller.tenants is None else only & caller.tenants
    )


def _resume_from(header: str | None, query: int | None) -> int | None:
    """The last alarm event id the client had: the `Last-Event-ID` header (a browser's
    EventSource sends it on each reconnect, newer than the URL's) before `last_event_id`."""
    if header is None or not header.strip():
        return query
    if not _ID.fullmatch(header.strip()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"Last-Event-ID {header[:40]!r} is not an alarm event id (the `id:` of an alarm"
            " event of this stream: a whole number)",
        )
    return int(header.strip())


class _EventStream(StreamingResponse):
    """A live stream whose subscription is given back however the response ends: its events'
    generator does it when it ran, but one that never started (the client gone before the
    first byte) would hold a place of its key's streams for good."""

    def __init__(self, stream: Broadcaster, sub: Subscription, **kw: Any) -> None:
        super().__init__(stream.events(sub), **kw)
        self._stream, self._sub = stream, sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.unsubscribe(self._sub)


def stream_route(r: APIRouter) -> None:
    """Add the live stream's route to `r`."""

    @r.get("/stream", tags=["stream"], response_class=StreamingResponse)
    async def stream(
        ctx: Ctx,
        caller: Caller,
        watch: Annotated[KeyWatch, Depends(current_key_watch)],
        kinds: Annotated[
            str,
            Query(
                pattern="^(alarm|reading|notification)(,(alarm|reading|notification))*$",
                description="alarm, reading, notification (of subscriptions with an sse channel)",
            ),
        ] = "alarm,reading",
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
        tier: Annotated[
            str | None,
            Query(
                pattern=_TIER_LIST,
                description="only the alarm events of alarms whose peak tier (the highest they"
                " reached) is one of these: blue, yellow, orange, red (a comma list)",
            ),
        ] = None,
        last_event_id: Annotated[
            int | None,
            Query(
                ge=0,
                lt=2**63,
                description="resume after this alarm event id (for clients that cannot set"
                " the Last-Event-ID header, which wins when both are given)",
            ),
        ] = None,
        last_event_header: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                description="resume: the alarm events after this id are replayed first",
            ),
        ] = None,
    ) -> StreamingResponse:
        """Server-sent events: `alarm` transitions and `reading`s (the newest per sensor and
        flush) of the caller's tenants (or of `tenant` alone: another's is 404); `lagged` says
        how many a slow client missed. The stream follows the key: it ends (`end`) once the key
        is revoked, expires or leaves the configuration, and sends nothing of a tenant the key
        no longer sees. Each alarm event has `id:` its alarm journal id; with `Last-Event-ID`
        (or `last_event_id`) the alarm events after it are replayed first (`reset` when they
        cannot be); `tier` keeps the alarm events of alarms that reached those tiers."""
        resume = _resume_from(last_event_header, last_event_id)
        tiers = None if tier is None else frozenset(tier.split(","))
        only = None if tenant is None else frozenset(narrowed(ctx, caller, tenant))
        if ctx.stream is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no live stream here")

        def current() -> Principal | None:
            now = watch.current()
            return None if now is None else _only(now, only)

        try:
            wanted = frozenset(kinds.split(","))
            sub = ctx.stream.subscribe(
                _only(caller, only),
                wanted,
                current,
                key=watch.digest,
                tiers=tiers,
                resume=resume if "alarm" in wanted else None,
            )
        except TooManyStreamsError as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "30"}
            ) from exc
        return _EventStream(
            ctx.stream,
            sub,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
