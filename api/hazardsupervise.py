"""Listed supervision (挂牌督办) over HTTP (`alerts.hazardsupervision`): `POST
/api/v1/hazards/{id}/supervise`, the centre lists a major item (level, issuing authority,
document number, public notice), or changes its listing with a comment; audited as every step.
The item shows it in its detail and in the list (`supervised=true`); its closing (销号) records
the supervision's result. An enterprise neither lists nor changes it (403); another enterprise's
item is 404, as on the other hidden-danger routes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, status

from alerts.hazardflow import HazardConflictError, HazardIncompleteError
from alerts.hazards import get_item, item_events, read_item
from alerts.hazardsupervision import Supervision, supervise, supervisions_of
from api.auth import Principal
from api.context import WRITE, AppContext, Caller, Ctx, WriteGuard, is_centre, not_found
from api.hazardmodels import HazardDetail, SuperviseIn, detail
from api.hazards import HazardId, open_steps
from telemetry.clock import wall_ms

__all__ = ["hazard_supervise_router"]

log = logging.getLogger(__name__)


def _list(
    ctx: AppContext, caller: Principal, hazard_id: int, body: SuperviseIn, now: int
) -> Supervision:
    with ctx.statedb.transaction() as con:
        item = get_item(con, hazard_id)
        if item is None or not caller.sees(item.tenant):
            raise not_found(f"hazard {hazard_id}")
        if not is_centre(caller):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "listing a major hidden danger for supervision (挂牌督办) is the monitoring "
                "centre's (an admin or operator key of every tenant)",
            )
        given = body.model_dump(include={"level", "authority", "document_no", "notice_url"})
        return supervise(con, item, given, body.comment, caller.name, now)


def _detail(ctx: AppContext, caller: Principal, hazard_id: int) -> HazardDetail:
    item = read_item(ctx.statedb, hazard_id)
    assert item is not None
    ticket = supervisions_of(ctx.statedb, [hazard_id]).get(hazard_id)
    events = item_events(ctx.statedb, hazard_id)
    return detail(item, events, wall_ms(), ticket, open_steps(item, caller))


def hazard_supervise_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["hazards"])

    @r.post("/hazards/{hazard_id}/supervise", response_model=HazardDetail, dependencies=WRITE)
    async def supervise_hazard(
        hazard_id: HazardId, body: SuperviseIn, ctx: Ctx, caller: Caller
    ) -> HazardDetail:
        """List a major item for supervision (挂牌督办): `level` (province, city, county),
        `authority`, `document_no`, `notice_url` (optional, http or https); the deadline is the
        item's. Again with a `comment`: the listing changed. The centre's: an enterprise's key
        is 403; a general item, one without its deadline, a change without a comment 422; a
        closed item 409."""
        now = wall_ms()
        try:
            ticket = await asyncio.to_thread(_list, ctx, caller, hazard_id, body, now)
        except HazardConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except HazardIncompleteError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        log.info(
            "hazard %d listed for supervision (%s, %s) by %s",
            hazard_id, ticket.level, ticket.document_no, caller.name,
        )  # fmt: skip
        return await asyncio.to_thread(_detail, ctx, caller, hazard_id)

    return r
