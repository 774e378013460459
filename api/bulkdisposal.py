"""Taking many alarms through a disposal step at once (`POST /api/v1/alarms/disposal`): a
chattering point's flood (104 methane alarms on a night shift) verified, disposed or closed in
one call per step, each alarm journaled as if alone, with the same note and actor.

The shape of `api.bulkack`: the caller names the alarms by id (those it has seen), at most
`BULK_MAX`; one step (`verify`, `dispose`, `close`) and a note, required as for one alarm. Each
alarm goes through `AlarmDesk.act` on its own, exactly as `POST /alarms/{id}/disposal`; one
refused does not stop the others. The answer says, per id: done, already (at or past that
step), not found (another tenant's too), refused with the reason (out of order; closing one
still active).

Red alarms are not kept out: the note is required for every step anyway (the rule bulk
acknowledgement asks of red ones), and each alarm's journal carries it. The dashboard's
confirmation says how many of them reached red. The centre's review follows the single route's
rule: an enterprise's `close` of an alarm that reached a reviewed tier submits it for review
(`done`, disposal `review`; one already submitted is `already`), and `approve` and `return` are
the monitoring centre's steps (403 for the whole call from any other key).

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
from alerts.lifecycle import DISPOSAL_STEPS, NotReviewerError, TransitionError
from api.auth import Principal
from api.bounds import DB_INT_MAX
from api.bulkack import BULK_MAX
from api.context import (
    WRITE,
    AppContext,
    Caller,
    Ctx,
    is_centre,
    query_tenants,
    require_reviewer,
    require_writer,
)
from api.notes import RequiredNote
from telemetry.clock import wall_ms

__all__ = ["BulkDisposalIn", "BulkDisposalPublic", "bulk_disposal_routes"]

Step = Literal["verify", "dispose", "close", "approve", "return"]
Outcome = Literal["done", "already", "not_found", "refused"]
_REACHES = {"verify": "verified", "dispose": "disposed", "close": "closed", "approve": "closed"}
_RANK = {d: i for i, d in enumerate(DISPOSAL_STEPS)}  # received 0 ... review 3, closed 4
_REVIEW = frozenset({"approve", "return"})  # the centre's


def _past(disposal: str, step: Step, centre: bool) -> bool:
    """Whether an alarm at `disposal` has already taken `step` (or a later one): an
    enterprise's close has when it waits for the centre's review; a return never has (it goes
    back)."""
    if step == "return":
        return False
    reaches = "review" if step == "close" and not centre else _REACHES[step]
    return _RANK.get(disposal, -1) >= _RANK[reaches]


class BulkDisposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[Annotated[int, Field(ge=1, le=DB_INT_MAX)]] = Field(
        min_length=1,
        max_length=BULK_MAX,
        description=f"the alarms, at most {BULK_MAX}; an id given twice counts once",
    )
    step: Step = Field(
        description="the disposal step: verify 核实, dispose 处置, close 关闭 (an enterprise's "
        "close of a reviewed tier's alarm: submitted for the centre's review), and the "
        "centre's review of those: approve 批准销号, return 退回"
    )
    note: RequiredNote = Field(
        description="journaled on each alarm; required, and not only spaces or invisible "
        "characters",
    )


class BulkDisposalResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    result: Outcome
    reason: str | None = Field(default=None, description="why it was refused")
    disposal: str | None = Field(default=None, description="its disposal after (null: not found)")
    isa_state: str | None = Field(default=None, description="its state after (null: not found)")


class BulkDisposalPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    counts: dict[Outcome, int] = Field(description="how many of each result")
    results: list[BulkDisposalResult] = Field(description="one per id, in the order given")


def _step_all(
    ctx: AppContext, caller: Principal, ids: Sequence[int], step: Step, note: str
) -> tuple[list[BulkDisposalResult], list[AlarmEvent]]:
    """In a worker thread: each alarm taken through `step` on its own (one transaction and one
    journal event each, as `POST /alarms/{id}/disposal`), whatever happens to the others."""
    assert ctx.desk is not None
    tenants = query_tenants(ctx, caller)
    centre = is_centre(caller)
    results: list[BulkDisposalResult] = []
    events: list[AlarmEvent] = []
    for i in ids:
        row = ctx.statedb.get_alarm(i)
        if row is None or not caller.sees(row.tenant):
            results.append(BulkDisposalResult(id=i, result="not_found"))
            continue
        if _past(row.disposal, step, centre):
            results.append(
                BulkDisposalResult(
                    id=i, result="already", disposal=row.disposal, isa_state=row.isa_state
                )
            )
            continue
        try:
            event = ctx.desk.act(
                i, step, actor=caller.name, now=wall_ms(), tenants=tenants, note=note, centre=centre
            )
        except AlarmNotFoundError:
            results.append(BulkDisposalResult(id=i, result="not_found"))
            continue
        except (TransitionError, NotReviewerError) as exc:  # out of order; still active; ...
            now = ctx.statedb.get_alarm(i) or row
            already = _past(now.disposal, step, centre)
            results.append(
                BulkDisposalResult(
                    id=i,
                    result="already" if already else "refused",
                    reason=None if already else str(exc),
                    disposal=now.disposal,
                    isa_state=now.isa_state,
                )
            )
            continue
        events.append(event)
        results.append(
            BulkDisposalResult(
                id=i, result="done", disposal=event.disposal, isa_state=event.isa_state
            )
        )
    return results, events


def bulk_disposal_routes(r: APIRouter) -> None:
    """Add the bulk disposal step to `r` (the alarm router)."""

    @r.post("/alarms/disposal", response_model=BulkDisposalPublic, dependencies=WRITE)
    async def dispose_many(body: BulkDisposalIn, ctx: Ctx, caller: Caller) -> BulkDisposalPublic:
        """Take the alarms named (at most 500) through one disposal step, `verify`, `dispose`
        or `close`, or the centre's review `approve` or `return` (403 for any other key), each
        journaled as if alone with the same note (required). An enterprise's close of an alarm
        that reached a reviewed tier submits it for the centre's review (disposal `review`).
        Answers per id: `done`, `already` (at or past that step), `not_found` (another
        tenant's too), or `refused` with the reason (out of order; close while still active;
        closing one that awaits the review)."""
        require_writer(caller)
        if body.step in _REVIEW:
            require_reviewer(caller)
        if ctx.desk is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no alarm desk here")
        ids = list(dict.fromkeys(body.ids))  # in the order given, each once
        results, events = await asyncio.to_thread(_step_all, ctx, caller, ids, body.step, body.note)
        if events:
            await ctx.on_events(events)
        counts: dict[Outcome, int] = {"done": 0, "already": 0, "not_found": 0, "refused": 0}
        for res in results:
            counts[res.result] += 1
        return BulkDisposalPublic(counts=counts, results=results)
