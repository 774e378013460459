"""Alarm supervision (报警督办) over HTTP: `POST /api/v1/alarms/{id}/supervise`, the monitoring
centre presses 督办 on a vehicle's alarm and the ticket goes down to the vehicle's enterprise
platform over JT/T 809 (0x9401: `gateway.jt809`). The act is journaled on the alarm (a comment
of the centre's key: the level, the deadline, the note), and that journal event's id is the
supervision id: unique, stable across restarts, and the key the platform's answer (0x1401) comes
back with; the supervision is recorded with its vehicle and plate (`alarm_supervisions`), which
an answer must match (`alerts.supervisionanswers`). The command, `supervise_alarm`, is published
on the vehicle's command topic (QoS 1), which the JT/T 809 gateway serving the vehicle's
tenant takes (a JT/T 808 gateway ignores it). The hub does not know which gateway serves a
vehicle: `published` says only that the broker took the command. A tenant no JT/T 809 gateway
serves has no subscriber to its commands: the broker drops the command, and no receipt of a
gateway's (sent, kept ...: `alerts.supervisionanswers`) comes to the journal.
Only the centre's (an admin or operator key of every
tenant): an enterprise's key is 403."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, HTTPException, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmNotFoundError
from alerts.kinds import kind_name
from alerts.lifecycle import TransitionError
from alerts.supervisionanswers import (
    SUPERVISION_MARK,
    Supervision,
    record_not_sent,
    record_supervision,
)
from api.alarmactions import AlarmId
from api.context import (
    WRITE,
    Caller,
    CommandNotSentError,
    Ctx,
    WriteGuard,
    is_centre,
    not_found,
    require_writer,
)
from api.notes import Note
from telemetry.clock import wall_ms

__all__ = ["alarm_supervise_router", "fit"]

_MAX_DAYS = 30
_CST = timezone(timedelta(hours=8))
LEVELS = {"urgent": "紧急", "normal": "一般"}


def fit(text: str, width: int) -> str:
    """`text` cut to `width` bytes of GBK (a field of the 0x9401), whole characters."""
    while len(text.encode("gb18030")) > width:
        text = text[:-1]
    return text


def _bytes(width: int) -> AfterValidator:
    def check(value: str) -> str:
        try:
            n = len(value.encode("gb18030"))
        except UnicodeEncodeError as exc:
            raise ValueError("not writable in GBK") from exc
        if n > width:
            raise ValueError(f"{n} bytes in GBK, at most {width} (the 0x9401's field)")
        return value

    return AfterValidator(check)


class SuperviseAlarmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    deadline: int = Field(
        description="the supervision's end (督办截止时间), ms since the epoch: in the future, at "
        f"most {_MAX_DAYS} days ahead"
    )
    level: Literal["urgent", "normal"] = Field(
        default="normal", description="督办级别: urgent 紧急 (0), normal 一般 (1)"
    )
    note: Note = ""
    # (the lengths: a byte of GBK is at least a character; the bytes checked after)
    supervisor: Annotated[str, _bytes(16)] = Field(
        default="",
        max_length=16,
        description="督办人, at most 16 bytes in GBK (default: the key's name)",
    )
    tel: Annotated[str, _bytes(20)] = Field(
        default="", max_length=20, description="督办联系电话, at most 20 bytes in GBK"
    )
    email: Annotated[str, _bytes(32)] = Field(
        default="", max_length=32, description="督办联系电子邮件, at most 32 bytes in GBK"
    )


class SupervisionOut(BaseModel):
    supervision_id: int
    alarm_id: int
    tenant: str
    vehicle: str
    kind: str
    deadline: int
    level: str
    published: bool = Field(
        description="published to the broker now; false: kept until the hub is connected again "
        "(a hub that can keep no more answers 503)"
    )


def _text(body: SuperviseAlarmIn) -> str:
    until = datetime.fromtimestamp(body.deadline / 1000, UTC).astimezone(_CST)
    said = f"{SUPERVISION_MARK} ({LEVELS[body.level]}, 截止 {until:%Y-%m-%d %H:%M})"
    return f"{said}: {body.note}" if body.note.strip() else said


def alarm_supervise_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["alarms"])

    @r.post("/alarms/{alarm_id}/supervise", response_model=SupervisionOut, dependencies=WRITE)
    async def supervise_alarm(
        alarm_id: AlarmId, body: SuperviseAlarmIn, ctx: Ctx, caller: Caller
    ) -> SupervisionOut:
        """督办 a vehicle's alarm: the ticket goes to the vehicle's enterprise platform over
        JT/T 809 (0x9401) with the alarm's kind and start, `deadline`, `level` and the
        supervisor (`supervisor`, default the key's name; `tel`, `email`); the platform's
        answer (0x1401) lands on the alarm's journal. The centre's: an enterprise's key 403;
        an alarm of no vehicle, a deadline past or too far 422."""
        require_writer(caller)
        row = await asyncio.to_thread(ctx.statedb.get_alarm, alarm_id)
        if row is None or not caller.sees(row.tenant):
            raise not_found(f"alarm {alarm_id}")
        if not is_centre(caller):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "supervising an alarm (报警督办) is the monitoring centre's (an admin or "
                "operator key of every tenant)",
            )
        if row.site != "vehicles":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "only a vehicle's alarm is supervised through its enterprise platform",
            )
        now = wall_ms()
        if not now < body.deadline <= now + _MAX_DAYS * 86_400_000:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"the deadline is in the future, at most {_MAX_DAYS} days ahead (ms since the "
                "epoch)",
            )
        if ctx.desk is None or ctx.send_command is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no alarm desk here")
        try:
            event: AlarmEvent = await asyncio.to_thread(
                ctx.desk.act, alarm_id, "comment", actor=caller.name, now=now, note=_text(body)
            )
        except AlarmNotFoundError as exc:
            raise not_found(f"alarm {alarm_id}") from exc
        except TransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        vehicle = ctx.registry.vehicles.get((row.tenant, row.device))
        plate = vehicle.spec.plate if vehicle is not None else ""
        record = Supervision(
            event.event_id, alarm_id, row.tenant, row.device, plate, body.deadline, now,
            caller.name,
        )  # fmt: skip
        await asyncio.to_thread(record_supervision, ctx.statedb, record)
        kind = kind_name(row.side)
        command = {
            "command": "supervise_alarm",
            "supervision_id": event.event_id,
            "alarm_id": alarm_id,
            "kind": kind,
            "ts": row.started_ts,
            "deadline": body.deadline,
            "level": body.level,
            "supervisor": body.supervisor or fit(caller.name, 16),
            "tel": body.tel,
            "email": body.email,
            "at": now,
        }
        try:
            published = await ctx.send_command(
                row.tenant, row.device, orjson.dumps(command), body.deadline
            )
        except CommandNotSentError as exc:  # journaled as not sent: the operator sees it
            failed: AlarmEvent = await asyncio.to_thread(
                ctx.desk.act, alarm_id, "comment", actor="hub", now=wall_ms(),
                note=f"{SUPERVISION_MARK} #{event.event_id} 未发出 (not sent): {exc}",
            )  # fmt: skip
            await asyncio.to_thread(record_not_sent, ctx.statedb, event.event_id, failed.ts)
            await ctx.on_events([event, failed])
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"supervision {event.event_id} not sent: {exc}; 督办 again later",
            ) from exc
        await ctx.on_events([event])
        return SupervisionOut(
            supervision_id=event.event_id,
            alarm_id=alarm_id,
            tenant=row.tenant,
            vehicle=row.device,
            kind=kind,
            deadline=body.deadline,
            level=body.level,
            published=published,
        )

    return r
