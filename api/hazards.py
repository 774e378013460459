"""Hidden-danger items over HTTP (隐患排查治理, `alerts.hazardflow`): reported by an enterprise
(or found by the centre's inspection, or opened from an alarm), graded, given a deadline,
supervised and closed (销号) by the centre; planned, rectified and submitted for review by the
enterprise. Every step is audited; the deadlines raise alarms (`alerts.hazardalarms`), judged at
once after each step. Tenant-scoped as the alarms are: another enterprise's item is 404.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, status

from alerts.alarms import AlarmEvent
from alerts.hazardalarms import HazardAlarms
from alerts.hazardflow import (
    ACTIONS,
    CENTRE,
    DAY_MS,
    ENTERPRISE,
    STATUSES,
    STEPS,
    HazardConflictError,
    HazardForbiddenError,
    HazardIncompleteError,
    HazardItem,
    Party,
)
from alerts.hazards import (
    HazardFilter,
    get_item,
    insert_item,
    item_events,
    list_items,
    read_item,
    take_step,
)
from alerts.hazardsupervision import close_supervision, supervisions_of
from api.auth import WRITERS, Principal
from api.bounds import DB_INT_MAX, FUTURE_SKEW_MS
from api.context import (
    WRITE,
    AppContext,
    Caller,
    Ctx,
    WriteGuard,
    is_centre,
    not_found,
    query_tenants,
)
from api.hazardmodels import (
    HazardDetail,
    HazardIn,
    HazardPublic,
    StepIn,
    detail,
    public,
)
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["MAX_DEADLINE_DAYS", "MAX_FOUND_AGO_DAYS", "hazard_router", "open_steps"]

log = logging.getLogger(__name__)
MAX_DEADLINE_DAYS = 3660  # a deadline at most ten years ahead
MAX_FOUND_AGO_DAYS = 366  # a finding reported at most this long after it was found
HazardId = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
StepName = Annotated[str, Path(description="the step: " + ", ".join(ACTIONS))]


def _party(caller: Principal) -> Party:
    """The centre's steps are the monitoring centre's own (`is_centre`: an admin or operator
    key of every tenant), as for an alarm's review and a bypass approval; any other writer, an
    admin or operator key limited to some tenants too, takes the enterprise's."""
    return CENTRE if is_centre(caller) else ENTERPRISE


def open_steps(item: HazardItem, caller: Principal) -> list[str]:
    """The steps `caller` may take on `item` now, from `STEPS` (its party's, from the item's
    status): none for a viewer; `start` only once the centre has set a deadline (the
    enterprise cannot give one). What else a step lacks the hub says when it is taken."""
    if caller.role not in WRITERS:
        return []
    party = _party(caller)
    return [
        action
        for action, step in STEPS.items()
        if party in step.party
        and item.status in step.from_statuses
        and not (action == "start" and item.deadline is None)
    ]


def _alarms(ctx: AppContext) -> HazardAlarms:
    return HazardAlarms(ctx.statedb, ctx.registry, ctx.registry.config.notify.disposal)


def _tenant_of(ctx: AppContext, caller: Principal, body: HazardIn) -> tuple[str, str, str]:
    """The item's tenant, site and location: `from_alarm`'s, or the body's (a key of one tenant
    may leave it out). 404 for a tenant, site or alarm the caller does not see."""
    if body.from_alarm is not None:
        row = ctx.statedb.get_alarm(body.from_alarm)
        if row is None or not caller.sees(row.tenant):
            raise not_found(f"alarm {body.from_alarm}")
        if body.tenant is not None and body.tenant != row.tenant:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"alarm {row.id} is tenant {row.tenant!r}'s, not {body.tenant!r}",
            )
        info = ctx.registry.sensor_of(row.tenant, row.sensor, row.site, row.device)
        return row.tenant, body.site or row.site, body.location or (info.location if info else "")
    tenant = body.tenant
    if tenant is None:
        if caller.tenants is None or len(caller.tenants) != 1:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "give tenant: the enterprise whose hidden danger this is (this key sees several)",
            )
        (tenant,) = caller.tenants
    if not caller.sees(tenant) or tenant not in ctx.registry.tenants:
        raise not_found(f"tenant {tenant!r}")
    if body.site is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give site: where it is")
    return tenant, body.site, body.location


def _check_deadline(deadline: int | None, now: int) -> None:
    """422 for a deadline not after now, or more than `MAX_DEADLINE_DAYS` ahead (a typing
    error, and past the calendar the journal writes)."""
    if deadline is None:
        return
    if deadline <= now:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"deadline {deadline} is not after now ({now} ms): give a deadline in the future",
        )
    if deadline > now + MAX_DEADLINE_DAYS * DAY_MS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"deadline {deadline} is more than {MAX_DEADLINE_DAYS} days ahead (check the time)",
        )


def _report(ctx: AppContext, caller: Principal, body: HazardIn, now: int) -> HazardItem:
    tenant, site, location = _tenant_of(ctx, caller, body)
    if site not in ctx.registry.sites_of(tenant):
        raise not_found(f"site {site!r} of tenant {tenant!r}")
    alarm_ids = list(
        dict.fromkeys([*([body.from_alarm] if body.from_alarm else []), *body.alarm_ids])
    )
    sensors = list(body.sensor_ids)
    for alarm_id in alarm_ids:
        row = ctx.statedb.get_alarm(alarm_id)
        if row is None or row.tenant != tenant:
            raise not_found(f"alarm {alarm_id} of tenant {tenant!r}")
        if alarm_id == body.from_alarm:
            sensors.insert(0, row.sensor)
    sensors = list(dict.fromkeys(sensors))
    for sensor in body.sensor_ids:
        info = ctx.registry.sensor(sensor)
        if info is None or info.tenant != tenant:
            raise not_found(f"sensor {sensor!r} of tenant {tenant!r}")
    _check_deadline(body.deadline, now)
    found_at = body.found_at
    if found_at is None and body.from_alarm is not None:
        row = ctx.statedb.get_alarm(body.from_alarm)
        found_at = row.started_ts if row is not None and row.started_ts > 0 else None
    if body.found_at is not None and body.found_at < now - MAX_FOUND_AGO_DAYS * DAY_MS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"found_at={body.found_at} is more than {MAX_FOUND_AGO_DAYS} days before the hub's "
            f"clock ({now} ms): check the time (ms since the epoch)",
        )
    if body.found_at is not None and body.found_at > now + FUTURE_SKEW_MS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"found_at={body.found_at} is later than the hub's clock ({now} ms): a hidden "
            "danger is reported once it is found",
        )
    party = _party(caller)
    source = body.source or (
        "monitoring_alarm" if body.from_alarm else "inspection" if party == CENTRE else "self_check"
    )
    item = HazardItem(
        0, tenant, site, source, body.category, body.grade, body.description, location,
        tuple(alarm_ids), tuple(sensors), found_at or now, body.found_by or caller.name,
        caller.name, now, interim_measures=body.interim_measures, updated_at=now,
    )  # fmt: skip
    # (a proposed deadline is the reporter's, in the audit: the centre's grade or deadline
    # step sets the binding one, which the overdue alarm runs on)
    proposed = {} if body.deadline is None else {"proposed_deadline": body.deadline}
    with ctx.statedb.transaction() as con:
        return insert_item(con, item, party, changes=proposed)


def _step(
    ctx: AppContext, caller: Principal, hazard_id: int, action: str, body: StepIn, now: int
) -> tuple[HazardItem, list[AlarmEvent]]:
    with ctx.statedb.transaction() as con:
        item = get_item(con, hazard_id)
        if item is None or not caller.sees(item.tenant):
            raise not_found(f"hazard {hazard_id}")
        changes = body.changes(item.plan)
        after = take_step(
            con, item, action, _party(caller), changes, body.comment, caller.name, now
        )
        if action == "close":  # (a listed supervision's result: the closing's comment)
            close_supervision(con, after, body.comment, now)
        return after, _alarms(ctx).judge_item(con, after, now)


def _one(ctx: AppContext, caller: Principal, hazard_id: int) -> HazardDetail:
    item = read_item(ctx.statedb, hazard_id)
    if item is None or not caller.sees(item.tenant):
        raise not_found(f"hazard {hazard_id}")
    ticket = supervisions_of(ctx.statedb, [hazard_id]).get(hazard_id)
    events = item_events(ctx.statedb, hazard_id)
    return detail(item, events, wall_ms(), ticket, open_steps(item, caller))


def hazard_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["hazards"])

    @r.post(
        "/hazards",
        response_model=HazardDetail,
        status_code=status.HTTP_201_CREATED,
        dependencies=WRITE,
    )
    async def report_hazard(body: HazardIn, ctx: Ctx, caller: Caller) -> HazardDetail:
        """Report a hidden danger (status `reported`): a key of the item's tenant (self-check,
        complaint), or the centre's, of every tenant (an inspection). `from_alarm: <id>` opens it
        from the tenant's alarm: linked, site, sensor and location filled, source
        `monitoring_alarm`."""
        refuse_seconds(found_at=body.found_at, deadline=body.deadline)
        now = wall_ms()
        item = await asyncio.to_thread(_report, ctx, caller, body, now)
        log.info("hazard %d of %s/%s reported by %s", item.id, item.tenant, item.site, caller.name)
        return await asyncio.to_thread(_one, ctx, caller, item.id)

    @r.get("/hazards", response_model=list[HazardPublic])
    async def hazards(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(max_length=200)] = None,
        site: Annotated[str | None, Query(max_length=200)] = None,
        status_: Annotated[str | None, Query(alias="status", pattern="^[a-z_]+$")] = None,
        grade: Annotated[str | None, Query(pattern="^(general|major)$")] = None,
        overdue: bool | None = None,
        supervised: Annotated[
            bool | None, Query(description="listed for supervision (挂牌督办), or not")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None,
            Query(ge=1, le=DB_INT_MAX, description="the items reported before this id (next page)"),
        ] = None,
    ) -> list[HazardPublic]:
        """The items of the tenants the key sees, newest reported first; `overdue=true` those
        past their rectification deadline and not closed; `supervised=true` those listed for
        supervision (挂牌督办). Page with `before=<last id>`."""
        if status_ is not None and status_ not in STATUSES:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"status {status_!r}: one of {', '.join(STATUSES)}",
            )
        tenants = query_tenants(ctx, caller)
        if tenant is not None:  # (one not seen, or neither configured nor on record: 404)
            on_record = tenant in ctx.registry.tenants or bool(
                await asyncio.to_thread(list_items, ctx.statedb, HazardFilter([tenant]), 1)
            )
            if not caller.sees(tenant) or not on_record:
                raise not_found(f"tenant {tenant!r}")
            tenants = [tenant]
        if site is not None:  # (a site neither configured nor on record: 404, not [])
            configured = ctx.registry.tenants if tenants is None else tenants
            known = any(site in ctx.registry.sites_of(t) for t in configured) or bool(
                await asyncio.to_thread(
                    list_items, ctx.statedb, HazardFilter(tenants, site=site), 1
                )
            )
            if not known:
                raise not_found(f"site {site!r}")
        now = wall_ms()
        where = HazardFilter(tenants, site, status_, grade, overdue, now, before, supervised)
        rows = await asyncio.to_thread(list_items, ctx.statedb, where, limit)
        tickets = await asyncio.to_thread(supervisions_of, ctx.statedb, [i.id for i in rows])
        return [public(i, now, tickets.get(i.id)) for i in rows]

    @r.get("/hazards/{hazard_id}", response_model=HazardDetail)
    async def hazard(hazard_id: HazardId, ctx: Ctx, caller: Caller) -> HazardDetail:
        """One item with its audit (who took each step, when, why)."""
        return await asyncio.to_thread(_one, ctx, caller, hazard_id)

    @r.post("/hazards/{hazard_id}/{action}", response_model=HazardDetail, dependencies=WRITE)
    async def hazard_step(
        hazard_id: HazardId,
        action: StepName,
        ctx: Ctx,
        caller: Caller,
        body: Annotated[StepIn | None, Body()] = None,
    ) -> HazardDetail:
        """Take a step (the enterprise's: plan, start, request-review; the centre's: grade,
        deadline, accept, reject, close; either's: comment). 403 for the other party's step,
        409 from a status it is not taken from, 422 for what it lacks."""
        if action not in ACTIONS:
            raise not_found(f"step {action!r} (the steps: {', '.join(ACTIONS)})")
        given = body or StepIn()
        refuse_seconds(deadline=given.deadline)
        now = wall_ms()
        _check_deadline(given.deadline, now)
        try:
            item, events = await asyncio.to_thread(
                _step, ctx, caller, hazard_id, action, given, now
            )
        except HazardForbiddenError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except HazardConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except HazardIncompleteError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        log.info("hazard %d: %s by %s -> %s", item.id, action, caller.name, item.status)
        await ctx.on_events(events)
        return await asyncio.to_thread(_one, ctx, caller, hazard_id)

    return r
