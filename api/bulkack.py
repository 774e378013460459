"""Acknowledging many alarms at once (`POST /api/v1/alarms/acknowledge`): a chattering point's
flood (74 methane alarms in 5 minutes on a night shift) acknowledged in one call, each alarm
journaled as if acknowledged alone, with the same note and actor.

The caller names the alarms by id, those it has seen: never "whatever the point has", which
would acknowledge an alarm raised after the operator looked. At most `BULK_MAX` per call. A red
alarm (one that reached the highest tier) is acknowledged only with a note saying why, in bulk
as alone: EEMUA 191 and ISA-18.2 warn against acknowledging the highest priority blindly. The answer
says, per id, what happened: acknowledged, already, not found (another tenant's too), refused
with the reason.

The route goes on the alarm router (`api.alarms.alarm_router`), under its prefix and tag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from alerts.alarms import AlarmEvent
from alerts.desk import AlarmNotFoundError
from alerts.lifecycle import TransitionError
from alerts.statedb import AlarmEventRow, AlarmRow
from api.auth import Principal
from api.bounds import DB_INT_MAX
from api.context import (
    WRITE,
    AppContext,
    Caller,
    Ctx,
    acked_for,
    is_centre,
    query_tenants,
    require_writer,
)
from api.notes import Note
from telemetry.clock import wall_ms

__all__ = [
    "BULK_MAX",
    "RED_NEEDS_NOTE",
    "BulkAckIn",
    "BulkAckPublic",
    "bulk_ack_routes",
    "reached_red",
]

BULK_MAX = 500  # alarms per call: a flood's worth, and an answer that stays small
_ALREADY = "the alarm is already acknowledged"  # alerts.lifecycle's reason
# alone or in bulk (`POST /alarms/{id}/acknowledge` answers it as a 422), in both languages
RED_NEEDS_NOTE = (
    "红色报警须填写确认说明 a red alarm is acknowledged only with a note saying why (EEMUA 191), "
    "alone or in bulk: give a note"
)
Outcome = Literal["acknowledged", "already", "not_found", "refused"]


class BulkAckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[Annotated[int, Field(ge=1, le=DB_INT_MAX)]] = Field(
        min_length=1,
        max_length=BULK_MAX,
        description=f"the alarms to acknowledge, at most {BULK_MAX}; an id given twice counts once",
    )
    note: Note = Field(
        default="",
        description="journaled on each alarm; needed when one of them reached red",
    )


class BulkAckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    result: Outcome
    reason: str | None = Field(default=None, description="why it was refused")
    isa_state: str | None = Field(default=None, description="its state after (null: not found)")
    centre_acked: bool | None = Field(
        default=None,
        description="acknowledged by the supervising centre after (null: not found); "
        "`isa_state` is the enterprise's side",
    )


class BulkAckPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    counts: dict[Outcome, int] = Field(description="how many of each result")
    results: list[BulkAckResult] = Field(description="one per id, in the order given")


def reached_red(row: AlarmRow, events: Sequence[AlarmEventRow]) -> bool:
    """Whether the alarm is, or was, red (its peak tier): it is acknowledged only with a note.
    (One out of service is refused anyway: a note would not help that.)"""
    return row.tier == "red" or any(e.tier == "red" for e in events)


def _acknowledge_all(
    ctx: AppContext, caller: Principal, ids: Sequence[int], note: str
) -> tuple[list[BulkAckResult], list[AlarmEvent]]:
    """In a worker thread: each alarm acknowledged on its own (one transaction and one journal
    event each, as `POST /alarms/{id}/acknowledge`), whatever happens to the others."""
    assert ctx.desk is not None
    tenants = query_tenants(ctx, caller)
    rows = {i: ctx.statedb.get_alarm(i) for i in ids}
    seen = [i for i, row in rows.items() if row is not None and caller.sees(row.tenant)]
    reached = ctx.statedb.alarm_events(seen)
    results: list[BulkAckResult] = []
    events: list[AlarmEvent] = []
    for i in ids:
        row = rows[i]
        if i not in reached or row is None:
            results.append(BulkAckResult(id=i, result="not_found"))
            continue
        sides = {"isa_state": row.isa_state, "centre_acked": row.centre_acked}
        if acked_for(caller, row):  # by the caller's side (the centre's, or the enterprise's)
            results.append(BulkAckResult(id=i, result="already", **sides))
            continue
        if reached_red(row, reached[i]) and not note.strip() and not row.out_of_service:
            results.append(BulkAckResult(id=i, result="refused", reason=RED_NEEDS_NOTE, **sides))
            continue
        try:
            event = ctx.desk.act(
                i,
                "acknowledge",
                actor=caller.name,
                now=wall_ms(),
                tenants=tenants,
                note=note,
                centre=is_centre(caller),
                consoles=ctx.keys.consoles(),
            )
        except AlarmNotFoundError:
            results.append(BulkAckResult(id=i, result="not_found"))
            continue
        except TransitionError as exc:  # out of service; or acknowledged meanwhile
            already = str(exc).startswith(_ALREADY)  # the site's, or the centre's
            results.append(
                BulkAckResult(
                    id=i,
                    result="already" if already else "refused",
                    reason=None if already else str(exc),
                    **sides,
                )
            )
            continue
        events.append(event)
        # (the centre's acknowledgement is its own; an enterprise's leaves the centre's as it was)
        centre = is_centre(caller) or row.centre_acked
        results.append(
            BulkAckResult(
                id=i, result="acknowledged", isa_state=event.isa_state, centre_acked=centre
            )
        )
    return results, events


def bulk_ack_routes(r: APIRouter) -> None:
    """Add the bulk acknowledgement to `r` (the alarm router)."""

    @r.post("/alarms/acknowledge", response_model=BulkAckPublic, dependencies=WRITE)
    async def acknowledge_many(body: BulkAckIn, ctx: Ctx, caller: Caller) -> BulkAckPublic:
        """Acknowledge the alarms named (at most 500), each journaled as if alone with the same
        note; a red one only with a note. Answers per id: `acknowledged`, `already`,
        `not_found` (another tenant's too), or `refused` with the reason."""
        require_writer(caller)
        if ctx.desk is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no alarm desk here")
        ids = list(dict.fromkeys(body.ids))  # in the order given, each once
        results, events = await asyncio.to_thread(_acknowledge_all, ctx, caller, ids, body.note)
        if events:
            await ctx.on_events(events)
        counts: dict[Outcome, int] = {"acknowledged": 0, "already": 0, "not_found": 0, "refused": 0}
        for res in results:
            counts[res.result] += 1
        return BulkAckPublic(counts=counts, results=results)
