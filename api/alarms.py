"""Alarms and their lifecycle over HTTP: list and filter, acknowledge, shelve, unshelve,
comment, the disposal steps, sensors out of service; many alarms acknowledged or taken through a
disposal step at once (`api.bulkack`, `api.bulkdisposal`). The router also carries the
notification objects and the outbox (`api.notifications`). Every route is tenant-scoped: another
tenant's alarm answers 404. Changing anything needs the admin, operator or enterprise role;
viewers read.

Here the router, the list (JSON or CSV) and one alarm's read; one alarm's actions and a
sensor's service are `api.alarmactions`, an alarm's JSON `api.alarmjson` (`alarm_json` and
`names_of` re-exported).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from alerts.alarmquery import changed_up_to
from alerts.lifecycle import DISPOSAL_STEPS, ISA_STATES
from alerts.statedb import AlarmFilter
from alerts.supervisionstate import of_alarms
from alerts.table import ALARM_KIND_SIDES, TIERS
from api.alarmactions import AlarmId, alarm_action_routes
from api.alarmcsv import CSV_MAX_ROWS, alarm_csv, csv_name
from api.alarmjson import alarm_json, alarm_public, names_of
from api.bounds import DB_INT_MAX
from api.bulkack import bulk_ack_routes
from api.bulkdisposal import bulk_disposal_routes
from api.context import (
    AppContext,
    Caller,
    Ctx,
    WriteGuard,
    check_record_sensor,
    check_record_site,
    not_found,
    record_scope,
)
from api.encode import AnswerCache, json_bytes, json_response
from api.models import AlarmPublic
from api.notifications import notification_routes
from api.notifyretry import bulk_retry_routes
from api.timerange import refuse_seconds
from telemetry.registry import Registry

__all__ = ["alarm_json", "alarm_router", "names_of"]

_MAX_MS = 2**53  # ms since the epoch: far beyond any real time


def _filter(tenants: list[str] | None, key: tuple[Any, ...]) -> tuple[AlarmFilter, int]:
    """The filter and limit of `key`, the list route's filters in route order."""
    _, state, sensor, site, side, disposal, isa_state, tier, open_, limit, before = key[:11]
    peak_tier, overdue, start, end, centre_ack, changed_after = key[11:17]
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
        changed_after=changed_after,
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
        given = of_alarms(ctx.statedb, [a["id"] for a in alarms])
        return alarm_csv(
            (alarm_json(a, events[a["id"]], ctx.registry, names) for a in alarms), given
        )

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


class _Answers:
    """One app's alarm list answers, kept while the state database is unchanged and the
    configuration that named them (`tenant_name` ...) is the running one: a key of every tenant
    asks with the same key whatever the tenants configured."""

    __slots__ = ("cache", "named_by")

    def __init__(self) -> None:
        self.cache = AnswerCache()
        self.named_by: Registry | None = None


def _answers(request: Request, ctx: AppContext) -> AnswerCache:
    """The answers of the app serving `request` (the routers are built once a process and
    shared by its apps: each app, each hub's state database, keeps its own)."""
    state = request.app.state
    kept: _Answers | None = getattr(state, "alarm_answers", None)
    if kept is None:
        kept = state.alarm_answers = _Answers()
    if kept.named_by is not ctx.registry:
        kept.cache.clear()
        kept.named_by = ctx.registry
    return kept.cache


def alarm_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["alarms"])

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
            int | None, Query(ge=1, le=DB_INT_MAX, description="page: alarms with id below")
        ] = None,
        start: Annotated[
            int | None,
            Query(ge=0, le=_MAX_MS, description="event time (started_ts) from, epoch ms"),
        ] = None,
        end: Annotated[
            int | None,
            Query(ge=0, le=_MAX_MS, description="event time (started_ts) before, epoch ms"),
        ] = None,
        changed_after: Annotated[
            int | None,
            Query(
                ge=0,
                le=DB_INT_MAX,
                description="the alarms whose journal has an event with an id above this one "
                "(raised, acknowledged, disposed of ... since): a reconciliation's cursor; the "
                "answer's `X-Changed-Up-To` header is the next one",
            ),
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
        await check_record_sensor(ctx, tenants, sensor)  # and so did a mistyped sensor
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
            changed_after,
        )
        up_to = None
        if changed_after is not None:  # read first: every change up to it is in the answer
            up_to = await asyncio.to_thread(
                changed_up_to, ctx.statedb.query, tenants, changed_after
            )
        if csv_out:
            answer = await _csv_answer(ctx, tenants, key)
        else:
            answers = _answers(request, ctx)
            version = ctx.statedb.data_version()  # first: an answer read after it is no older
            body = answers.get(key, version)
            if body is None:
                body = json_bytes(await _alarm_list(ctx, tenants, key))
                answers.put(key, version, body)
            # `response_model` documents the answer; the rows went to JSON without a model each
            answer = json_response(body)
        if up_to is not None:
            answer.headers["X-Changed-Up-To"] = str(up_to)
        return answer

    @r.get("/alarms/{alarm_id}", response_model=AlarmPublic)
    async def get_alarm(alarm_id: AlarmId, ctx: Ctx, caller: Caller) -> AlarmPublic:
        row = await asyncio.to_thread(ctx.statedb.get_alarm, alarm_id)
        if row is None or not caller.sees(row.tenant):
            raise not_found(f"alarm {alarm_id}")
        events = (await asyncio.to_thread(ctx.statedb.alarm_events, [row.id]))[row.id]
        return alarm_public(row, events, ctx.registry)

    alarm_action_routes(r, get_alarm)  # acknowledge, shelve ... review; a sensor's service
    bulk_ack_routes(r)  # many alarms acknowledged at once
    bulk_disposal_routes(r)  # many alarms through a disposal step at once
    notification_routes(r)  # subscriptions, escalation policies, silences; the outbox
    bulk_retry_routes(r)  # the outbox's dead rows sent again, many at once

    return r
