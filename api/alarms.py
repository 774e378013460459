"""Alarms and their lifecycle over HTTP: list and filter, acknowledge, shelve, unshelve,
comment, the disposal steps, sensors out of service; many alarms acknowledged or taken through a
disposal step at once (`api.bulkack`, `api.bulkdisposal`). The router also carries the
notification objects and the outbox (`api.notifications`). Every route is tenant-scoped: another
tenant's alarm answers 404. Changing anything needs the admin, operator or enterprise role;
viewers read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmNotFoundError
from alerts.kinds import alarm_value_unit
from alerts.lifecycle import DISPOSAL_STEPS, ISA_STATES, Action, NotReviewerError, TransitionError
from alerts.statedb import AlarmEventRow, AlarmFilter, AlarmRow
from alerts.table import ALARM_KIND_SIDES, TIERS, kind_name
from api.alarmcsv import CSV_MAX_ROWS, alarm_csv, csv_name
from api.auth import Principal
from api.bulkack import RED_NEEDS_NOTE, bulk_ack_routes, reached_red
from api.bulkdisposal import bulk_disposal_routes
from api.context import (
    WRITE,
    AppContext,
    Caller,
    Ctx,
    WriteGuard,
    acked_for,
    check_record_site,
    is_centre,
    not_found,
    query_tenants,
    record_scope,
    require_centre,
    require_writer,
)
from api.encode import AnswerCache, json_bytes, json_response
from api.models import AlarmPublic
from api.notifications import notification_routes
from api.timerange import refuse_seconds
from telemetry.registry import Registry, SensorInfo

__all__ = ["alarm_router"]

_MAX_SHELVE_S = 7 * 86400
_MAX_ID = 2**63 - 1  # the database's integers
_MAX_MS = 2**53  # ms since the epoch: far beyond any real time
AlarmId = Annotated[int, Path(ge=1, le=_MAX_ID, description="the alarm's id")]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


_TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}  # none, blue ... red
# a tenant's and a site's names as configured, by id (a tenant's: `(tenant, None)`)
Names = Mapping[tuple[str, str | None], str]


def names_of(registry: Registry) -> Names:
    """The configured names of every tenant and site (ids without one are left out)."""
    found: dict[tuple[str, str | None], str] = {}
    for t in registry.config.tenants:
        if t.name:
            found[(t.id, None)] = t.name
        for site in t.sites:
            if site.name:
                found[(t.id, site.id)] = site.name
    return found


def _device_name(registry: Registry, row: Mapping[str, Any]) -> str:
    """The alarm's device by the name the configuration gives it: a device's `name`, a
    vehicle's plate; '' when it has none (a gateway has no name in the configuration)."""
    tenant, site, device = row["tenant"], row["site"], row["device"]
    if str(row["sensor"]).startswith("gateway:"):  # its device column is the gateway's id
        return ""
    found = registry.devices.get((tenant, site, device))
    if found is not None:
        return found.spec.name
    vehicle = registry.vehicles.get((tenant, device)) if site == "vehicles" else None
    return vehicle.spec.plate if vehicle is not None else ""


def _sensor_kind(info: SensorInfo | None, sensor: str) -> str:
    """What the alarm's point measures: the sensor's kind; `device` and `gateway` for the
    alarms of a device and of a gateway (as a notification's `sensor_kind`)."""
    if info is not None:
        return str(info.kind)
    if sensor.startswith("gateway:"):
        return "gateway"
    return "device" if sensor.startswith("device:") else ""


def _peak_tier(tier: str, events: Sequence[Mapping[str, Any]]) -> str:
    """The highest tier of the alarm and its journal."""
    tiers = [tier, *(str(e["tier"]) for e in events)]
    return max(tiers, key=lambda t: _TIER_RANK.get(t, 0))


_REACHING = frozenset(["raised", "escalated"])


def _peak(level: int, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The peak of the alarm: the level name, value and event time of the first raise or
    escalation that reached `level` (its `peak_level`); null when the journal has none."""
    for e in events:
        if e["kind"] in _REACHING and e["level"] == level:
            return {
                "peak_level_name": e["level_name"],
                "peak_value": _finite(e["value"]),
                "peak_ts": e["ts"],
            }
    return {"peak_level_name": None, "peak_value": None, "peak_ts": None}


def _event_json(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": e["id"],
        "kind": e["kind"],
        "ts": e["ts"],
        "arrival": e["arrival"],
        "level": e["level"],
        "level_name": e["level_name"],
        "tier": e["tier"],
        "value": _finite(e["value"]),
        "actor": e["actor"],
        "comment": e["comment"],
        "isa_state": e["isa_state"],
    }


def alarm_json(
    row: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    registry: Registry,
    names: Names | None = None,
) -> dict[str, Any]:
    """The alarm (a state-database record: column -> value) as `AlarmPublic` reads in JSON. The
    list route serialises these straight away, without a model per alarm (a fifth of the time);
    `alarm_public` validates the same dictionary, so the two cannot drift apart. `registry`
    gives the sensor's unit and location (a vehicle's plate) as configured now, and the
    tenant's and site's names (`names`, from the registry when not given)."""
    side = kind_name(row["side"])
    info = registry.sensor_of(row["tenant"], row["sensor"], row["site"], row["device"])
    if names is None:
        names = names_of(registry)
    return {
        "id": row["id"],
        "tenant": row["tenant"],
        # a monitoring centre knows an enterprise by its name, not by its id or sensors
        "tenant_name": names.get((row["tenant"], None), ""),
        "site": row["site"],
        "site_name": names.get((row["tenant"], row["site"]), ""),
        "device": row["device"],
        "sensor": row["sensor"],
        "rule": row["rule"],
        "side": side,
        "location": info.location if info is not None else "",
        # the registry's names beside the ids: an operator knows 1301 回风巷 T1, not ch4-t1
        "device_name": _device_name(registry, row),
        "tag": info.tag if info is not None else "",
        "sensor_kind": _sensor_kind(info, row["sensor"]),
        "state": row["state"],
        "isa_state": row["isa_state"],
        "acked": bool(row["acked"]),
        "centre_acked": bool(row["centre_acked"]),
        "shelved_until": row["shelved_until"],
        "suppressed": bool(row["suppressed"]),
        "out_of_service": bool(row["out_of_service"]),
        "disposal": row["disposal"],
        "disposal_due": row["disposal_due"],
        "overdue": bool(row["overdue"]),
        "level": row["level"],
        "level_name": row["level_name"],
        "tier": row["tier"],
        "action": row["action"],
        "peak_level": row["peak_level"],
        # the highest tier it reached: a red alarm back at yellow is still one of the red ones
        "peak_tier": _peak_tier(row["tier"], events),
        # the worst it was: what and when, not the value at its last change (the clear's)
        **_peak(row["peak_level"], events),
        "started_ts": row["started_ts"],
        "ended_ts": row["ended_ts"],
        "raised_at": row["raised_at"],
        "cleared_at": row["cleared_at"],
        "value": _finite(row["value"]),
        "value_unit": alarm_value_unit(registry, info, side),
        "events": [_event_json(e) for e in events],
    }


def _record(row: AlarmRow | AlarmEventRow) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def alarm_public(row: AlarmRow, events: list[AlarmEventRow], registry: Registry) -> AlarmPublic:
    return AlarmPublic.model_validate(
        alarm_json(_record(row), [_record(e) for e in events], registry)
    )


def _writer(caller: Principal) -> None:
    require_writer(caller)


async def _red_needs_note(ctx: AppContext, caller: Principal, alarm_id: int) -> None:
    """422 for an acknowledgement without a note of an alarm that reached red and would be
    acknowledged: a red alarm acknowledged alone asked nothing, in bulk a note (EEMUA 191).
    Another tenant's alarm, or none, is left to the action's 404; one already acknowledged or
    out of service to its 409 (a note would not help)."""

    def red() -> bool:
        row = ctx.statedb.get_alarm(alarm_id)
        if row is None or not caller.sees(row.tenant) or row.out_of_service:
            return False
        if acked_for(caller, row):  # by the caller's side: the centre's or the enterprise's
            return False
        return reached_red(row, ctx.statedb.alarm_events([row.id])[row.id])

    if await asyncio.to_thread(red):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, RED_NEEDS_NOTE)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoteIn(_In):
    note: str = Field(default="", max_length=2000)


class TextIn(_In):
    note: str = Field(min_length=1, max_length=2000)


class ShelveIn(_In):
    reason: str = Field(min_length=1, max_length=2000)
    duration_s: int | None = Field(default=None, gt=0, le=_MAX_SHELVE_S)
    until: int | None = Field(default=None, description="ms since the epoch")


class DisposalIn(_In):
    step: Literal["verify", "dispose", "close"]
    note: str = Field(min_length=1, max_length=2000)


class ReviewIn(_In):
    decision: Literal["approve", "return"] = Field(
        description="approve 批准销号: the alarm is closed; return 退回: back to `verified`, the "
        "enterprise disposes of it and closes it again"
    )
    note: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"\S",
        description="why: required, and not only spaces (a return tells the enterprise what to "
        "do again)",
    )


class ServiceIn(_In):
    in_service: bool
    reason: str = Field(default="", max_length=2000)


def _filter(tenants: list[str] | None, key: tuple[Any, ...]) -> tuple[AlarmFilter, int]:
    """The filter and limit of `key`, the list route's filters in route order."""
    _, state, sensor, site, side, disposal, isa_state, tier, open_, limit, before = key[:11]
    peak_tier, overdue, start, end, centre_ack = key[11:16]
    where = AlarmFilter(
        tenants,
        state=state,
        sensor=sensor,
        site=site,
        side=side,
        disposal=disposal,
        isa_state=isa_state.split(",") if isa_state else None,
        tier=tier.split(",") if tier else None,
        open_only=open_ is True,
        finished_only=open_ is False,
        before_id=before,
        peak_tier=peak_tier.split(",") if peak_tier else None,
        overdue=overdue,
        centre_acked=centre_ack,
        start_ts=start,
        end_ts=end,
    )
    return where, limit


async def _alarm_list(
    ctx: AppContext, tenants: list[str] | None, key: tuple[Any, ...]
) -> list[dict[str, Any]]:
    """The alarm list as JSON-ready dictionaries, `key` holding the filters in route order."""
    where, limit = _filter(tenants, key)
    # an indexed read of at most `limit` alarms on the event loop, cheaper than a trip to a
    # worker thread; one that would take longer gives up and runs in the worker thread
    found = ctx.statedb.quick_alarm_records(where, limit)
    if found is None:
        found = await asyncio.to_thread(ctx.statedb.list_alarm_records, where, limit)
    alarms, events = found
    names = names_of(ctx.registry)
    return [alarm_json(a, events[a["id"]], ctx.registry, names) for a in alarms]


async def _csv_answer(ctx: AppContext, tenants: list[str] | None, key: tuple[Any, ...]) -> Response:
    """The alarms as a CSV file: all of them, or 422 when there are more than the cap (a file
    cut short would read as the whole month)."""

    def read() -> bytes | None:  # in a worker thread: a month of alarms takes a while
        where, _ = _filter(tenants, key)
        alarms, events = ctx.statedb.list_alarm_records(where, CSV_MAX_ROWS + 1)
        if len(alarms) > CSV_MAX_ROWS:
            return None
        names = names_of(ctx.registry)
        return alarm_csv(alarm_json(a, events[a["id"]], ctx.registry, names) for a in alarms)

    body = await asyncio.to_thread(read)
    if body is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"more than {CSV_MAX_ROWS:,} alarms selected: export a shorter range "
            "(start=, end=) or fewer tenants or sites",
        )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{csv_name(*key[13:15])}"'},
    )


def alarm_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["alarms"])
    answers = AnswerCache()  # the alarm list's answers, while the state database is unchanged
    # and the configuration that named them (`tenant_name` ...) is the running one: a key of
    # every tenant asks with the same key whatever the tenants configured
    named_by: list[Registry | None] = [None]

    @r.get("/alarms", response_model=list[AlarmPublic])
    async def list_alarms(
        request: Request,
        ctx: Ctx,
        caller: Caller,
        state: Annotated[str | None, Query(pattern="^(active|cleared)$")] = None,
        isa_state: Annotated[
            str | None,
            Query(
                description="comma-separated: " + ", ".join(ISA_STATES),
                pattern="^[a-z_]+(,[a-z_]+)*$",
            ),
        ] = None,
        tier: Annotated[str | None, Query(pattern="^[a-z]+(,[a-z]+)*$")] = None,
        peak_tier: Annotated[
            str | None,
            Query(
                pattern="^[a-z]+(,[a-z]+)*$",
                description="reached one of these tiers at some time (a red alarm back at "
                "yellow is one of the red ones)",
            ),
        ] = None,
        overdue: Annotated[
            bool | None, Query(description="its disposal past its deadline (or not)")
        ] = None,
        centre_ack: Annotated[
            bool | None,
            Query(
                description="acknowledged by the supervising centre (`centre_acked`), or not: "
                "`centre_ack=false&open=true`, what waits for the centre's duty officer"
            ),
        ] = None,
        open: Annotated[
            bool | None,
            Query(
                description="true: not yet normal and acknowledged, or disposal not closed; "
                "false: finished (normal and closed)"
            ),
        ] = None,
        disposal: Annotated[
            str | None,
            Query(
                pattern="^(" + "|".join(DISPOSAL_STEPS) + ")$",
                description="the disposal step: " + ", ".join(DISPOSAL_STEPS) + " (review: "
                "closed by an enterprise, waiting for the monitoring centre's review)",
            ),
        ] = None,
        kind: Annotated[
            str | None, Query(description="alarm kind: " + ", ".join(ALARM_KIND_SIDES))
        ] = (None),
        sensor: str | None = None,
        site: str | None = None,
        tenant: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None, Query(ge=1, le=_MAX_ID, description="page: alarms with id below")
        ] = None,
        start: Annotated[
            int | None,
            Query(ge=0, le=_MAX_MS, description="event time (started_ts) from, epoch ms"),
        ] = None,
        end: Annotated[
            int | None,
            Query(ge=0, le=_MAX_MS, description="event time (started_ts) before, epoch ms"),
        ] = None,
        format: Annotated[
            Literal["json", "csv"],
            Query(description=f"csv: every alarm selected (at most {CSV_MAX_ROWS:,}), no limit"),
        ] = "json",
    ) -> Response:
        """Alarms, newest first, with their journal (raised, acknowledged, shelved ...); with
        `format=csv` one row per alarm with its handling, for a spreadsheet."""
        # the key's tenants, configured or not: a removed enterprise's alarms are the record
        tenants = await record_scope(ctx, caller, tenant)
        # (a mistyped filter, `sit=`, is 422 before this: `api.context.KNOWN_QUERY`)
        await check_record_site(ctx, tenants, site)  # a mistyped site read as 'no alarms there'
        refuse_seconds(start=start, end=end)
        if start is not None and end is not None and end <= start:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start")
        csv_out = format == "csv"
        if csv_out and ({"limit", "before"} & set(request.query_params)):
            # a page of the list exported would read as the whole range (helper-99: before=
            # gave 9 of 16 rows)
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"a CSV export holds every alarm selected (at most {CSV_MAX_ROWS:,}): "
                "no limit or before (select with start= and end=)",
            )
        for name, given, known in (
            ("isa_state", isa_state, ISA_STATES),
            ("tier", tier, TIERS),
            ("peak_tier", peak_tier, TIERS),
        ):
            bad = [v for v in (given.split(",") if given else ()) if v not in known]
            if bad:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: unknown value(s) {bad}"
                )
        side = None
        if kind is not None:
            if kind not in ALARM_KIND_SIDES:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no kind {kind!r}")
            side = ALARM_KIND_SIDES[kind]
        key = (
            None if tenants is None else tuple(tenants),
            state,
            sensor,
            site,
            side,
            disposal,
            isa_state,
            tier,
            open,
            CSV_MAX_ROWS + 1 if csv_out else limit,
            before,
            peak_tier,
            overdue,
            start,
            end,
            centre_ack,
        )
        if csv_out:
            return await _csv_answer(ctx, tenants, key)
        if named_by[0] is not ctx.registry:
            answers.clear()
            named_by[0] = ctx.registry
        version = ctx.statedb.data_version()  # first: an answer read after it is no older
        body = answers.get(key, version)
        if body is None:
            body = json_bytes(await _alarm_list(ctx, tenants, key))
            answers.put(key, version, body)
        # `response_model` documents the answer; the rows went to JSON without a model each
        return json_response(body)

    @r.get("/alarms/{alarm_id}", response_model=AlarmPublic)
    async def get_alarm(alarm_id: AlarmId, ctx: Ctx, caller: Caller) -> AlarmPublic:
        row = await asyncio.to_thread(ctx.statedb.get_alarm, alarm_id)
        if row is None or not caller.sees(row.tenant):
            raise not_found(f"alarm {alarm_id}")
        events = (await asyncio.to_thread(ctx.statedb.alarm_events, [row.id]))[row.id]
        return alarm_public(row, events, ctx.registry)

    async def act(
        ctx: AppContext,
        caller: Principal,
        alarm_id: AlarmId,
        action: Action,
        note: str = "",
        until: int | None = None,
    ) -> AlarmPublic:
        _writer(caller)
        if ctx.desk is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no alarm desk here")
        moved: list[AlarmEvent] = []  # the point's other alarms a shelve moved
        try:
            event = await asyncio.to_thread(
                ctx.desk.act,
                alarm_id,
                action,
                actor=caller.name,
                now=_now_ms(),
                tenants=query_tenants(ctx, caller),
                note=note,
                until=until,
                also=moved,
                centre=is_centre(caller),
                consoles=ctx.keys.consoles(),
            )
        except AlarmNotFoundError as exc:
            raise not_found(f"alarm {alarm_id}") from exc
        except NotReviewerError as exc:  # (after the tenancy: another tenant's alarm is 404)
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except TransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        await ctx.on_events([event, *moved])
        return await get_alarm(alarm_id, ctx, caller)

    @r.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmPublic, dependencies=WRITE)
    async def acknowledge(
        alarm_id: AlarmId, ctx: Ctx, caller: Caller, body: NoteIn | None = None
    ) -> AlarmPublic:
        """Acknowledge (ISA-18.2): active -> acknowledged, returned -> normal. An alarm that
        reached red only with a note saying why (422 without), as in bulk."""
        note = body.note if body else ""
        if not note.strip():
            _writer(caller)
            await _red_needs_note(ctx, caller, alarm_id)
        return await act(ctx, caller, alarm_id, "acknowledge", note)

    @r.post("/alarms/{alarm_id}/shelve", response_model=AlarmPublic, dependencies=WRITE)
    async def shelve(alarm_id: AlarmId, body: ShelveIn, ctx: Ctx, caller: Caller) -> AlarmPublic:
        """Shelve the alarm point for a while (at most 7 days), with a reason; it is shown but
        not notified, and a new activation meanwhile starts shelved. It ends by itself. The
        monitoring centre's (operator, admin keys)."""
        require_centre(caller)
        now = _now_ms()
        if (body.duration_s is None) == (body.until is None):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "give either duration_s or until"
            )
        until = body.until if body.until is not None else now + (body.duration_s or 0) * 1000
        if until > now + _MAX_SHELVE_S * 1000:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "a shelve lasts at most 7 days"
            )
        return await act(ctx, caller, alarm_id, "shelve", body.reason, until)

    @r.post("/alarms/{alarm_id}/unshelve", response_model=AlarmPublic, dependencies=WRITE)
    async def unshelve(
        alarm_id: AlarmId, ctx: Ctx, caller: Caller, body: NoteIn | None = None
    ) -> AlarmPublic:
        return await act(ctx, caller, alarm_id, "unshelve", body.note if body else "")

    @r.post("/alarms/{alarm_id}/comment", response_model=AlarmPublic, dependencies=WRITE)
    async def comment(alarm_id: AlarmId, body: TextIn, ctx: Ctx, caller: Caller) -> AlarmPublic:
        return await act(ctx, caller, alarm_id, "comment", body.note)

    @r.post("/alarms/{alarm_id}/disposal", response_model=AlarmPublic, dependencies=WRITE)
    async def disposal(
        alarm_id: AlarmId, body: DisposalIn, ctx: Ctx, caller: Caller
    ) -> AlarmPublic:
        """Closed-loop disposal: verify, dispose, close (in order, each with a note; close
        once the alarm has returned to normal). An enterprise's close of an alarm that reached a
        reviewed tier (`notify.disposal.review_tiers`, default red) goes to `review`, waiting
        for the monitoring centre's review; the centre's own close closes it."""
        return await act(ctx, caller, alarm_id, body.step, body.note)

    @r.post("/alarms/{alarm_id}/review", response_model=AlarmPublic, dependencies=WRITE)
    async def review(alarm_id: AlarmId, body: ReviewIn, ctx: Ctx, caller: Caller) -> AlarmPublic:
        """The monitoring centre's review of an enterprise's closing (审核销号), of an alarm in
        `review`: `approve` closes it, `return` sends it back to `verified` (the enterprise
        disposes of it and closes it again); a note is required. The centre's only (an admin
        or operator key of every tenant): any other key gets 403 (404 for an alarm it does not
        see)."""
        return await act(ctx, caller, alarm_id, body.decision, body.note)

    @r.post("/sensors/{sensor_id}/service", tags=["sensors"], dependencies=WRITE)
    async def service(
        sensor_id: str, body: ServiceIn, ctx: Ctx, caller: Caller
    ) -> dict[str, object]:
        """Take a sensor out of service (with a reason: the centre's, operator and admin keys)
        or return it to service."""
        _writer(caller)
        if not body.in_service:
            require_centre(caller)
        if ctx.desk is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no alarm desk here")
        try:
            events = await asyncio.to_thread(
                ctx.desk.set_in_service,
                sensor_id,
                body.in_service,
                actor=caller.name,
                now=_now_ms(),
                reason=body.reason,
                tenants=query_tenants(ctx, caller),
            )
        except AlarmNotFoundError as exc:
            raise not_found(f"sensor {sensor_id!r}") from exc
        except TransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        await ctx.on_events(events)
        return {"sensor": sensor_id, "in_service": body.in_service, "alarms": len(events)}

    bulk_ack_routes(r)  # many alarms acknowledged at once
    bulk_disposal_routes(r)  # many alarms through a disposal step at once
    notification_routes(r)  # subscriptions, escalation policies, silences; the outbox

    return r
