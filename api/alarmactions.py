"""One alarm's actions over HTTP: acknowledge, shelve, unshelve, comment, the disposal steps
and the centre's review; a sensor taken out of service or returned. Each goes through the alarm
desk; changing anything needs the admin, operator or enterprise role (some the centre's). The
routes go on the alarm router (`api.alarms.alarm_router`), after the one alarm's read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmNotFoundError
from alerts.lifecycle import Action, NotReviewerError, TransitionError
from api.auth import Principal
from api.bounds import DB_INT_MAX
from api.bulkack import RED_NEEDS_NOTE, reached_red
from api.context import (
    WRITE,
    AppContext,
    Caller,
    Ctx,
    acked_for,
    is_centre,
    not_found,
    query_tenants,
    require_centre,
    require_writer,
)
from api.models import AlarmPublic
from api.notes import Note, RequiredNote
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["AlarmId", "alarm_action_routes"]

_MAX_SHELVE_S = 7 * 86400
AlarmId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="the alarm's id")]


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
    note: Note = ""


class TextIn(_In):
    note: RequiredNote


class ShelveIn(_In):
    reason: RequiredNote
    duration_s: int | None = Field(default=None, gt=0, le=_MAX_SHELVE_S)
    until: int | None = Field(default=None, description="ms since the epoch")


class DisposalIn(_In):
    step: Literal["verify", "dispose", "close"]
    note: RequiredNote


class ReviewIn(_In):
    decision: Literal["approve", "return"] = Field(
        description="approve 批准销号: the alarm is closed; return 退回: back to `verified`, the "
        "enterprise disposes of it and closes it again"
    )
    note: RequiredNote = Field(
        description="why: required, and not only spaces or invisible characters (a return "
        "tells the enterprise what to do again)",
    )


class ServiceIn(_In):
    in_service: bool
    reason: Note = ""


def alarm_action_routes(
    r: APIRouter, get_alarm: Callable[[int, AppContext, Principal], Awaitable[AlarmPublic]]
) -> None:
    """Add one alarm's actions and a sensor's service to `r` (the alarm router); each answers
    the alarm as `get_alarm` reads it."""

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
                now=wall_ms(),
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
        now = wall_ms()
        refuse_seconds(until=body.until)  # (a shelve "needs an end in the future" said nothing)
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
                now=wall_ms(),
                reason=body.reason,
                tenants=query_tenants(ctx, caller),
            )
        except AlarmNotFoundError as exc:
            raise not_found(f"sensor {sensor_id!r}") from exc
        except TransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        await ctx.on_events(events)
        return {"sensor": sensor_id, "in_service": body.in_service, "alarms": len(events)}
