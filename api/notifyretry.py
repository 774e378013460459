"""Dead notifications sent again in bulk over HTTP: `POST /api/v1/notifications/retry`, beside
the one-by-one `POST /api/v1/notifications/{id}/retry` (`api.notifications`). After a wrong
webhook secret (the receiver's 401 makes each notification dead at its first try) or a
receiver down past the give-up time, the integrator corrects the subscription and sends every
dead row of it again with one call a page (`alerts.notify.bulkretry`). Tenant-scoped as the
outbox list: an enterprise key sends again its own tenants' rows, never the centre's."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from alerts.notify.bulkretry import BULK_RETRY_MAX, DeadRows, retry_dead_rows
from api.context import WRITE, Caller, Ctx, not_found, query_tenants, require_writer

__all__ = ["BulkRetryPublic", "bulk_retry_routes"]

_MAX_MS = 2**53


class BulkRetryPublic(BaseModel):
    retried: int
    ids: list[int]
    more: bool
    next_after: int | None


def bulk_retry_routes(r: APIRouter) -> None:
    """Add to `r` the bulk retry of dead notifications."""

    @r.post(
        "/notifications/retry",
        response_model=BulkRetryPublic,
        tags=["notifications"],
        dependencies=WRITE,
    )
    async def retry_many(
        ctx: Ctx,
        caller: Caller,
        subscription: Annotated[
            str | None,
            Query(
                min_length=3,
                max_length=200,
                description="only this subscription's rows, as the outbox lists it "
                "(`{tenant}/{id}`)",
            ),
        ] = None,
        since: Annotated[
            int | None, Query(ge=0, le=_MAX_MS, description="made (created_at) from, epoch ms")
        ] = None,
        until: Annotated[
            int | None, Query(ge=0, le=_MAX_MS, description="made (created_at) before, epoch ms")
        ] = None,
        after: Annotated[
            int, Query(ge=0, le=_MAX_MS, description="page: rows with an id above (next_after)")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=BULK_RETRY_MAX)] = BULK_RETRY_MAX,
    ) -> BulkRetryPublic:
        """Send the dead notifications selected once more, now, oldest first, at most `limit`
        a call, each with its key through its subscription's channel as configured now (as the
        one-by-one retry). A row not dead is left: a call repeated sends nothing twice. `more`:
        more dead rows matched; ask again with `after=next_after`."""
        require_writer(caller)
        notifier = ctx.notifier
        if notifier is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no notifier here")
        if since is not None and until is not None and until <= since:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until must be after since")
        tenants = query_tenants(ctx, caller)
        if subscription is not None:
            tenant, sep, _ = subscription.partition("/")
            if not sep:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "subscription: as the outbox lists it, `{tenant}/{id}`",
                )
            if not caller.sees(tenant):
                raise not_found(f"subscription {subscription!r}")
        which = DeadRows(tenants, subscription, since, until, after, limit)
        done = await asyncio.to_thread(
            retry_dead_rows, notifier.store.outbox_db, which, notifier.clock(), notifier.channel_now
        )
        if done.ids:
            notifier.wake.set()
        return BulkRetryPublic(
            retried=len(done.ids),
            ids=done.ids,
            more=done.more,
            next_after=done.last,
        )
