"""Notification objects and the outbox over HTTP: subscriptions, escalation policies and silences
(list, read, put, delete, per tenant), and the notification outbox. Webhook secrets and the
passwords of webhook URLs (`api.hidden`) are shown once, then masked; a spec saved back with the
mask keeps the stored secret. Every route is tenant-scoped: another tenant's object answers 404.
Changing anything needs the admin, operator or enterprise role; viewers read. Silences are the
monitoring centre's (admin, operator). Each object says its owner: the centre's (the
configuration file's, or last written by an admin or operator key) may be read by the tenant's
enterprise keys but not changed or deleted (403); an enterprise's own may be changed by both.

The routes go on the alarm router (`api.alarms.alarm_router`), under its prefix and tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alerts.notify.http import literal_refusal, refused_destination
from alerts.notify.netguard import AddressGuard
from alerts.notify.notifier import KINDS, NotifyObjectError, NotifyOwnerError
from alerts.notify.objects import webhook_urls
from api.auth import Principal
from api.context import (
    CENTRE_ROLES,
    WRITE,
    AppContext,
    Caller,
    Ctx,
    narrowed,
    not_found,
    query_tenants,
    require_centre,
    require_writer,
)
from api.hidden import (
    CENTRE_HIDDEN,
    HIDDEN,
    hide_receivers,
    keep_secret,
    keep_url,
    url_hides_secret,
)
from api.utf8text import refuse_not_utf8
from telemetry.notifyconfig import (
    EscalationPolicySpec,
    SilenceSpec,
    SubscriptionSpec,
    over_limit,
    recipients_problem,
)

__all__ = ["CENTRE_HIDDEN", "ObjectIn", "OutboxPublic", "notification_routes"]


class ObjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1, max_length=64)
    spec: dict[str, Any]

    @field_validator("spec")
    @classmethod
    def _utf8(cls, spec: dict[str, Any]) -> dict[str, Any]:
        """A text of the spec that does not encode as UTF-8 is 422 here, naming its field: under
        `Any` it reached the notifier's store, and its JSON failed with a 500."""
        return refuse_not_utf8(spec, "spec")


class OutboxPublic(BaseModel):
    id: int
    key: str
    tenant: str
    site: str
    subscription: str
    subject: str
    created_at: int
    due_at: int
    attempts: int
    status: str
    last_error: str
    delivered_at: int | None


def notification_routes(r: APIRouter) -> None:
    """Add to `r` the routes of subscriptions, escalation policies and silences, then the
    outbox's."""
    for path, kind in (
        ("subscriptions", "subscription"),
        ("escalation-policies", "escalation"),
        ("silences", "silence"),
    ):
        _object_routes(r, path, kind)

    @r.get("/notifications", response_model=list[OutboxPublic], tags=["notifications"])
    async def notifications(
        ctx: Ctx,
        caller: Caller,
        status_: Annotated[
            str | None, Query(alias="status", pattern="^(pending|delivered|dead)$")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> list[OutboxPublic]:
        """The notification outbox, newest first: what was sent, what waits, what failed. A
        tenant the caller does not see (or none of that name) is 404."""
        tenants = query_tenants(ctx, caller) if tenant is None else narrowed(ctx, caller, tenant)
        if ctx.notifier is None:
            return []
        # the centre's own subscriptions' rows: to a key of every tenant, `tenant=` or not
        centre = caller.tenants is None
        rows = await asyncio.to_thread(
            functools.partial(ctx.notifier.store.outbox, centre=centre), tenants, status_, limit
        )
        fields = list(OutboxPublic.model_fields)
        out = [OutboxPublic(**dict(zip(fields, row, strict=True))) for row in rows]
        if caller.role in CENTRE_ROLES:
            return out
        # the errors of the centre's subscriptions name its receivers (hosts, addresses): not
        # for an enterprise's or a viewer's eyes; that a delivery failed, they may know
        notifier = ctx.notifier
        return [
            o.model_copy(update={"last_error": CENTRE_HIDDEN})
            if o.last_error and notifier.row_owner(o.subscription, o.key) != "enterprise"
            else o
            for o in out
        ]

    @r.post(
        "/notifications/{row_id}/retry",
        response_model=OutboxPublic,
        tags=["notifications"],
        dependencies=WRITE,
    )
    async def retry(
        row_id: Annotated[int, Path(ge=1, le=2**53)], ctx: Ctx, caller: Caller
    ) -> OutboxPublic:
        """Send a dead notification once more, now, with its key (a receiver that had it drops
        it), through its subscription's (or escalation step's) channel as configured now: after
        the receiver is back, its secret or URL corrected, or the centre allowed its address
        (the channel it was made with when the subscription or step is gone). Failing again, it
        is dead again, with the new reason."""
        require_writer(caller)
        notifier = ctx.notifier
        if notifier is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no notifier here")
        tenants = query_tenants(ctx, caller)
        found = await asyncio.to_thread(
            notifier.store.retry_dead, row_id, tenants, notifier.clock(), notifier.channel_now
        )
        if found is None:
            raise not_found(f"notification {row_id}")
        if isinstance(found, str):
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"notification {row_id} is {found}, not dead"
            )
        notifier.wake.set()
        fields = list(OutboxPublic.model_fields)
        return OutboxPublic(**dict(zip(fields, found, strict=True)))


def _writing(request: Request) -> asyncio.Lock:
    """The app's lock a tenant's count is checked and its object stored under, one write at a
    time: four at once each found room for one more (the limits, `TENANT_LIMITS`). The app's,
    not the router's: the routers are built once a process and shared by its apps."""
    state = request.app.state
    lock: asyncio.Lock | None = getattr(state, "notify_writing", None)
    if lock is None:
        lock = state.notify_writing = asyncio.Lock()
    return lock


def _object_routes(r: APIRouter, path: str, kind: str) -> None:
    model = KINDS[kind]
    tag: list[str | Enum] = ["notifications"]

    def notifier(ctx: AppContext) -> Any:
        if ctx.notifier is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no notifier here")
        return ctx.notifier

    def owned(ctx: AppContext, caller: Principal, tenant: str) -> None:
        if tenant not in ctx.registry.tenants or not caller.sees(tenant):
            raise not_found(f"tenant {tenant!r}")

    def public(item: tuple[str, Any, str, str, int], caller: Principal) -> dict[str, Any]:
        tenant, spec, owner, actor, at = item
        # the centre's receivers (its webhook URLs, its staff's mail) are the centre's to see
        receivers = owner == "enterprise" or caller.role in CENTRE_ROLES
        return {
            "tenant": tenant,
            "spec": _public_spec(spec, receivers=receivers),
            "owner": owner,
            "updated_by": actor,
            "updated_at": at,
        }

    def owner_of(caller: Principal) -> str:
        return "enterprise" if caller.role == "enterprise" else "centre"

    async def list_objects(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="only this tenant (of the caller's)")] = (
            None
        ),
    ) -> list[dict[str, Any]]:
        tenants = narrowed(ctx, caller, tenant)  # another's (or none of that name): 404
        items = await asyncio.to_thread(notifier(ctx).owned_objects, kind, tenants)
        return [public(item, caller) for item in items]

    async def get_object(tenant: str, object_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
        owned(ctx, caller, tenant)
        for item in await asyncio.to_thread(notifier(ctx).owned_objects, kind, [tenant]):
            if item[0] == tenant and item[1].id == object_id:
                return public(item, caller)
        raise not_found(f"{kind} {object_id!r}")

    async def put_object(
        request: Request, body: ObjectIn, ctx: Ctx, caller: Caller
    ) -> dict[str, Any]:
        require_writer(caller)
        if kind == "silence":
            require_centre(caller)
        owned(ctx, caller, body.tenant)
        stored = await asyncio.to_thread(_stored, ctx, kind, body.tenant)
        sid = body.spec.get("id")
        if (
            owner_of(caller) == "enterprise"
            and isinstance(sid, str)
            and sid in stored
            and notifier(ctx).catalog.owner_of(kind, body.tenant, sid) != "enterprise"
        ):  # before its stored secrets are looked at: an answer that differed with a guessed
            # URL told an enterprise the centre's (helper-137)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{kind} {sid!r} of {body.tenant} is the monitoring centre's: an enterprise key "
                "may read it, not change it (give yours another id)",
            )
        raw = _keep_secrets(body.spec, stored)
        try:
            spec = model.model_validate(raw)
        except ValidationError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                jsonable_encoder(exc.errors(include_url=False, include_context=False)),
            ) from exc
        problem = spec.new_silence_problem() if isinstance(spec, SilenceSpec) else None
        owner = owner_of(caller)
        catalog = notifier(ctx).catalog
        if problem is None and (
            owner == "enterprise" or catalog.owner_of(kind, body.tenant, spec.id) == "enterprise"
        ):  # the object's owner, not the caller: the centre's edit of one stays guarded
            guard = AddressGuard.of(ctx.registry.config.notify.enterprise_webhook_networks)
            for url in webhook_urls(spec):
                problem = await _destination_problem(url, guard)
                if problem is not None:
                    break
        if problem is None and not isinstance(spec, SilenceSpec):
            problem = recipients_problem(spec)
        if problem is not None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
        try:
            # and no configuration changes meanwhile: it counts these with its own
            writing = _writing(request)
            async with writing, ctx.config.lock if ctx.config else contextlib.nullcontext():
                held = await asyncio.to_thread(_stored, ctx, kind, body.tenant)
                if spec.id not in held:  # (one replaced, or one of before over it, may stay)
                    problem = over_limit(kind, len(held) + 1)
                    if problem is not None:
                        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
                await asyncio.to_thread(
                    lambda: notifier(ctx).put(kind, body.tenant, spec, caller.name, owner=owner)
                )
        except NotifyOwnerError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except NotifyObjectError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        saved = catalog.owner_of(kind, body.tenant, spec.id)  # the object's, not the caller's
        return {"tenant": body.tenant, "spec": _public_spec(spec), "owner": saved}

    async def delete_object(tenant: str, object_id: str, ctx: Ctx, caller: Caller) -> None:
        require_writer(caller)
        if kind == "silence":
            require_centre(caller)
        owned(ctx, caller, tenant)
        owner = owner_of(caller)
        try:
            gone = await asyncio.to_thread(
                lambda: notifier(ctx).delete(kind, tenant, object_id, owner=owner)
            )
        except NotifyOwnerError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except NotifyObjectError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        if not gone:
            raise not_found(f"{kind} {object_id!r}")

    r.add_api_route(f"/{path}", list_objects, methods=["GET"], tags=tag)
    r.add_api_route(f"/{path}", put_object, methods=["PUT"], tags=tag, dependencies=WRITE)
    r.add_api_route(f"/{path}/{{tenant}}/{{object_id}}", get_object, methods=["GET"], tags=tag)
    r.add_api_route(
        f"/{path}/{{tenant}}/{{object_id}}",
        delete_object,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        tags=tag,
        dependencies=WRITE,
    )


# names resolved for the check above, apart from the pool that routing, delivery and the other
# routes use: an enterprise naming hosts whose DNS never answers holds these two, not those
_RESOLVER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook-dns")
_RESOLVE_S = 5.0


async def _destination_problem(url: str, guard: AddressGuard) -> str | None:
    """Why the URL is refused for an enterprise's webhook, or None; a name that does not
    resolve within `_RESOLVE_S` is let be (every connection is checked again)."""
    literal = literal_refusal(url, guard)  # an address is judged at once, never queued
    if literal is not None:
        return literal or None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(_RESOLVE_S):  # (3.11's wait_for may lose a cancellation)
            return await loop.run_in_executor(_RESOLVER, refused_destination, url, guard)
    except TimeoutError:
        return None


def _stored(ctx: AppContext, kind: str, tenant: str) -> dict[str, Any]:
    if ctx.notifier is None:
        return {}
    return {s.id: s.model_dump(mode="json") for _, s in ctx.notifier.objects(kind, [tenant])}


def _keep_secrets(spec: dict[str, Any], stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A spec read back from the API carries masked secrets: saving it keeps the stored ones."""
    old = stored.get(str(spec.get("id")), {})
    out = dict(spec)

    def keep(channel: Any, before: Any) -> Any:
        if not isinstance(channel, dict):
            return channel
        before = before if isinstance(before, dict) else {}
        url = channel.get("url")
        if isinstance(url, str) and url_hides_secret(url):
            kept = keep_url(url, before.get("url"))
            if kept is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "a masked password or token in a URL can only stand for the one stored with"
                    " that same URL: give it",
                )
            channel = {**channel, "url": kept}
        if channel.get("secret") == HIDDEN:
            # the stored HMAC key signs only for the receiver it was given with (api.hidden)
            kept_secret = keep_secret(channel.get("url"), before.get("url"), before.get("secret"))
            if kept_secret is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "a masked secret can only stand for the one stored with that same URL: give"
                    " the secret again for a new URL",
                )
            channel = {**channel, "secret": kept_secret}
        return channel

    if "channel" in out:
        out["channel"] = keep(out["channel"], old.get("channel"))
    if isinstance(out.get("steps"), list):
        before_steps = old.get("steps") or []
        out["steps"] = [
            {
                **st,
                "channel": keep(
                    st.get("channel"),
                    (before_steps[i] if i < len(before_steps) else {}).get("channel"),
                ),
            }
            if isinstance(st, dict)
            else st
            for i, st in enumerate(out["steps"])
        ]
    return out


def _public_spec(
    spec: SubscriptionSpec | EscalationPolicySpec | SilenceSpec, *, receivers: bool = True
) -> dict[str, Any]:
    """The object as JSON, with webhook secrets and the secrets of their URLs replaced by a
    mark: shown once, never again. Without `receivers`, the URLs and addresses are masked
    too (the centre's object read by an enterprise or a viewer): `api.hidden.hide_receivers`,
    as the registry shows a tenant's."""
    return hide_receivers(spec.model_dump(mode="json"), receivers=receivers)
