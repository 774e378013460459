"""Interlock bypass approvals over HTTP (`alerts.bypasses`, 联锁旁路/摘除审批): a writer records
the written approval of a loop's bypass (who approved it, why, the interim measures, from when
until when), lists them, reads one, and revokes one; never changes nor deletes one. An approval
recorded or revoked judges the loop's `bypass_unapproved` alarm at once (`alerts.bypassalarms`).
Scoped as every route: an enterprise key its own tenants' sensors (another's is 404), a centre
key every tenant's; the POSTs are for writers. Each approval says which party recorded it
(`party`: the centre's admin or operator key of every tenant, else the enterprise); one the
centre recorded is revoked by the centre alone (403 to any other key).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.bypassalarms import (
    BypassAlarms,
    CentresApprovalError,
    NotABypassError,
    TooManyApprovalsError,
)
from alerts.bypasses import (
    BACKDATE_MS,
    CENTRE,
    ENTERPRISE,
    MAX_OPEN,
    MAX_SPAN_MS,
    BypassApproval,
    get_approval,
    list_approvals,
)
from api.auth import Principal
from api.bounds import DB_INT_MAX
from api.context import (
    WRITE,
    Caller,
    Ctx,
    WriteGuard,
    is_centre,
    not_found,
    query_tenants,
    record_scope,
)
from api.notes import Note, RequiredNote
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["BypassApprovalIn", "BypassApprovalPublic", "bypass_router"]

log = logging.getLogger(__name__)

_DAYS = MAX_SPAN_MS // 86_400_000
_Ms = Annotated[int, Field(ge=1, le=DB_INT_MAX, strict=True)]
_Party = Literal["enterprise", "centre"]
_CENTRES = (
    "bypass approval {id} was recorded by the supervising centre ({actor}): only the centre "
    "revokes it (an admin or operator key of every tenant); nothing an enterprise does alters "
    "the centre's record: ask the centre, or record the enterprise's own approval"
)


def _party(caller: Principal) -> str:
    """The party a key records for: the centre (an admin or operator key of every tenant, as
    for its acknowledgement and review), else the enterprise."""
    return CENTRE if is_centre(caller) else ENTERPRISE


class BypassApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sensor: str = Field(
        min_length=1,
        max_length=200,
        description="the bypass flag's sensor (of kind interlock, or whose rule has a level "
        "named bypassed...: `chem-process.interlock-bypass`)",
    )
    approved_by: RequiredNote = Field(
        max_length=200, description="who approved the bypass (审批人: name and post)"
    )
    reason: RequiredNote = Field(description="why the loop is bypassed (旁路原因)")
    measures: RequiredNote = Field(
        description="the interim measures while it is bypassed (临时安全措施: watch, manual "
        "shut-off at hand ...)"
    )
    ticket: Note | None = Field(
        default=None,
        max_length=200,
        description="the approval form's or work permit's number (审批单号), when there is one",
    )
    valid_from: _Ms = Field(
        description="from when the bypass is approved, ms since the epoch (a JSON integer): "
        f"at most {BACKDATE_MS // 3_600_000} h before now (a late paper), at most {_DAYS} days "
        "after it"
    )
    until: _Ms = Field(
        description=f"until when (excluded), ms since the epoch: after valid_from, at most "
        f"{_DAYS} days after it, and later than now"
    )

    @model_validator(mode="after")
    def _span(self) -> BypassApprovalIn:
        if self.until <= self.valid_from:
            raise ValueError("until must be after valid_from")
        if self.until - self.valid_from > MAX_SPAN_MS:
            raise ValueError(
                f"an approval covers at most {_DAYS} days (until - valid_from): a longer "
                "bypass is approved again, in writing"
            )
        return self


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: RequiredNote = Field(description="why the approval is revoked (撤销原因)")


class BypassApprovalPublic(BaseModel):
    id: int
    tenant: str
    sensor: str
    approved_by: str
    reason: str
    measures: str = Field(description="the interim measures while bypassed")
    ticket: str | None
    valid_from: int = Field(description="ms since the epoch")
    until: int = Field(description="ms since the epoch (excluded)")
    actor: str = Field(description="the API key that recorded it")
    party: _Party | None = Field(
        description="which party recorded it: enterprise (an enterprise's key, or a centre "
        "role limited to some tenants) or centre (an admin or operator key of every tenant); "
        "null for one recorded before the hub kept it"
    )
    recorded_at: int = Field(description="when the hub recorded it, ms since the epoch")
    revoked_at: int | None
    revoked_by: str | None = Field(description="the API key that revoked it")
    revoke_note: str | None
    active: bool = Field(description="whether it covers the hub's clock now")


class BypassApprovalRecorded(BaseModel):
    approval: BypassApprovalPublic
    alarm_events: int = Field(
        description="a count, not a list: how many events it made on the loop's "
        "bypass_unapproved alarm (1: its clear or raise, 0: none); the events are in that "
        "alarm's journal (GET /api/v1/alarms/{id})"
    )


def _public(a: BypassApproval, now: int) -> BypassApprovalPublic:
    return BypassApprovalPublic(
        id=a.id,
        tenant=a.tenant,
        sensor=a.sensor,
        approved_by=a.approved_by,
        reason=a.reason,
        measures=a.measures,
        ticket=a.ticket,
        valid_from=a.valid_from,
        until=a.until,
        actor=a.actor,
        party=a.party,
        recorded_at=a.recorded_at,
        revoked_at=a.revoked_at,
        revoked_by=a.revoked_by,
        revoke_note=a.revoke_note,
        active=a.covers(now),
    )


def _bypasses(ctx: Ctx) -> BypassAlarms:
    return BypassAlarms(ctx.statedb, ctx.registry, ctx.registry.config.notify.disposal)


_Id = Annotated[int, Path(ge=1, le=DB_INT_MAX)]


def bypass_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["bypass-approvals"])

    @r.post(
        "/bypass-approvals",
        response_model=BypassApprovalRecorded,
        status_code=status.HTTP_201_CREATED,
        dependencies=WRITE,
    )
    async def record_bypass_approval(
        body: BypassApprovalIn, ctx: Ctx, caller: Caller
    ) -> BypassApprovalRecorded:
        """Record the written approval of an interlock's bypass: one covering now clears the
        loop's `bypass_unapproved` alarm. A sensor has at most 20 approvals not ended (until
        later, not revoked) at once: the next is 409. Never changed afterwards: revoke it and record
        another."""
        refuse_seconds(valid_from=body.valid_from, until=body.until)
        now = wall_ms()
        if body.until <= now:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"until={body.until} is not later than the hub's clock ({now} ms): an approval "
                "that has ended covers no bypass (check the time)",
            )
        if body.valid_from < now - BACKDATE_MS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"valid_from={body.valid_from} is more than {BACKDATE_MS // 3_600_000} h before "
                f"the hub's clock ({now} ms): an approval is recorded within a day of its start "
                "(the late paper of an emergency bypass), not backdated further (check the time)",
            )
        if body.valid_from > now + MAX_SPAN_MS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"valid_from={body.valid_from} is more than {_DAYS} days after the hub's clock "
                f"({now} ms): record an approval when its bypass is near (check the time)",
            )
        bypasses = _bypasses(ctx)
        fields = (
            body.approved_by,
            body.reason,
            body.measures,
            body.ticket or None,
            body.valid_from,
            body.until,
        )
        try:
            approval, events = await asyncio.to_thread(
                bypasses.record,
                body.sensor,
                query_tenants(ctx, caller),
                fields,
                caller.name,
                now,
                _party(caller),
            )
        except TooManyApprovalsError as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"sensor {body.sensor!r} has {MAX_OPEN} approvals not ended already (until "
                "later, not revoked): revoke one no longer meant, or record this one when "
                "another has ended",
            ) from exc
        except NotABypassError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"sensor {body.sensor!r} is no interlock bypass flag (its rule has no level "
                "named bypassed...: a trip flag's approval would mean nothing)",
            ) from exc
        except LookupError as exc:
            raise not_found(f"sensor {body.sensor!r}") from exc
        log.info(
            "bypass approval %d of %s/%s recorded by %s",
            approval.id,
            approval.tenant,
            approval.sensor,
            caller.name,
        )
        await ctx.on_events(events)
        return BypassApprovalRecorded(approval=_public(approval, now), alarm_events=len(events))

    @r.get("/bypass-approvals", response_model=list[BypassApprovalPublic])
    async def bypass_approvals(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(max_length=200)] = None,
        sensor: Annotated[str | None, Query(max_length=200)] = None,
        active: Annotated[
            bool | None,
            Query(
                description="true: those covering now; false: those not (ended, revoked, not begun)"
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None,
            Query(ge=1, le=DB_INT_MAX, description="those recorded before this approval id"),
        ] = None,
        party: Annotated[
            _Party | None, Query(description="those recorded by the enterprise or the centre")
        ] = None,
    ) -> list[BypassApprovalPublic]:
        """The bypass approvals of the tenants the key sees (`tenant` narrows, `sensor` names
        one loop's flag), newest recorded first. Page with `before=<the last id of a page>`."""
        tenants = await record_scope(ctx, caller, tenant)
        now = wall_ms()
        if sensor is not None:
            info = ctx.registry.sensor(sensor)
            seen = info is not None and (tenants is None or info.tenant in tenants)
            if not seen:
                found = await asyncio.to_thread(
                    list_approvals, ctx.statedb, tenants, sensor, None, None, 1
                )
                if not found:
                    raise not_found(f"sensor {sensor!r}")
        rows = await asyncio.to_thread(
            list_approvals, ctx.statedb, tenants, sensor, now, active, limit, before, party
        )
        return [_public(a, now) for a in rows]

    @r.get("/bypass-approvals/{approval_id}", response_model=BypassApprovalPublic)
    async def bypass_approval(approval_id: _Id, ctx: Ctx, caller: Caller) -> BypassApprovalPublic:
        """One bypass approval (another tenant's is 404)."""
        found = await asyncio.to_thread(_one, ctx, approval_id)
        tenants = query_tenants(ctx, caller)
        if found is None or (tenants is not None and found.tenant not in tenants):
            raise not_found(f"bypass approval {approval_id}")
        return _public(found, wall_ms())

    @r.post(
        "/bypass-approvals/{approval_id}/revoke",
        response_model=BypassApprovalRecorded,
        dependencies=WRITE,
    )
    async def revoke_bypass_approval(
        approval_id: _Id, body: RevokeIn, ctx: Ctx, caller: Caller
    ) -> BypassApprovalRecorded:
        """Revoke an approval now (its record kept, with who revoked it, when and why): a loop
        still bypassed past its grace without another approval raises `bypass_unapproved`.
        An approval revoked already is 409, its first revocation standing; one the centre
        recorded, revoked by another key than the centre's, 403."""
        now = wall_ms()
        try:
            approval, events, revoked = await asyncio.to_thread(
                _bypasses(ctx).revoke,
                approval_id,
                query_tenants(ctx, caller),
                body.note,
                caller.name,
                now,
                _party(caller),
            )
        except CentresApprovalError as exc:
            found = await asyncio.to_thread(_one, ctx, approval_id)
            actor = "?" if found is None else found.actor
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, _CENTRES.format(id=approval_id, actor=actor)
            ) from exc
        except LookupError as exc:
            raise not_found(f"bypass approval {approval_id}") from exc
        if not revoked:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"bypass approval {approval_id} was revoked already at {approval.revoked_at} "
                f"by {approval.revoked_by}",
            )
        log.info("bypass approval %d revoked by %s", approval.id, caller.name)
        await ctx.on_events(events)
        return BypassApprovalRecorded(approval=_public(approval, now), alarm_events=len(events))

    return r


def _one(ctx: Ctx, approval_id: int) -> BypassApproval | None:
    with ctx.statedb.snapshot() as con:
        return get_approval(con, approval_id)
