"""The centre's alarm supervisions (报警督办) and what became of them, over HTTP: `GET
/api/v1/supervisions` (the ones to chase: `status=overdue`, `open` ...) and `GET
/api/v1/supervisions/{id}`. Read by every key of the tenant: an enterprise sees what the centre
asked of it (its own tenants' only; another tenant's supervision is 404), the centre every
tenant's. Given by `POST /api/v1/alarms/{id}/supervise` (`api.alarmsupervise`); the state is the
state database's (`alerts.supervisionstate`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from alerts.supervisionstate import (
    STATUSES,
    Status,
    SupervisionState,
    get_supervision,
    list_supervisions,
)
from api.bounds import DB_INT_MAX
from api.context import Caller, Ctx, not_found, query_tenants, record_scope
from telemetry.registry import Registry

__all__ = ["SupervisionPublic", "supervision_router"]

_Id = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="the supervision's number")]


class SupervisionPublic(BaseModel):
    id: int = Field(description="the supervision's number (its journal event; SUPERVISION_ID)")
    alarm_id: int
    tenant: str
    tenant_name: str = Field(
        default="", description="the enterprise's name as configured; '' when none"
    )
    vehicle: str
    plate: str = Field(description="the plate the ticket went with (as compared: no `·`)")
    deadline: int = Field(description="督办截止时间, ms since the epoch")
    created_at: int
    actor: str = Field(description="the centre's key that gave it")
    status: Status = Field(
        description="answered; undelivered (no answer, the ticket never reached the platform: "
        "expired, dropped, no_platform, not_sent); overdue (no answer, past the deadline by "
        "the hub's clock); open (none of these yet)"
    )
    late: bool = Field(description="answered, its first answer after the deadline")
    platform: str | None = Field(description="the platform the gateway sent it to")
    receipt: str | None = Field(
        description="the gateway's last receipt: sent, kept, expired, dropped, no_platform; "
        "not_sent: the hub could not publish it"
    )
    receipt_at: int | None
    answered_at: int | None = Field(description="the platform's first answer (0x1401)")
    result: int | None = Field(
        description="its last answer: 0 处理中, 1 已处理完毕, 2 不作处理, 3 将来处理"
    )
    result_text: str | None
    result_at: int | None
    answer_platform: str | None
    overdue_at: int | None = Field(
        description="when the hub's clock found it past its deadline without an answer"
    )


def _public(s: SupervisionState, registry: Registry) -> SupervisionPublic:
    return SupervisionPublic(
        id=s.id, alarm_id=s.alarm_id, tenant=s.tenant,
        tenant_name=registry.names(s.tenant, "")[0], vehicle=s.vehicle, plate=s.plate,
        deadline=s.deadline, created_at=s.created_at, actor=s.actor, status=s.status,
        late=s.late, platform=s.platform, receipt=s.receipt, receipt_at=s.receipt_at,
        answered_at=s.answered_at, result=s.result, result_text=s.result_text,
        result_at=s.result_at, answer_platform=s.answer_platform, overdue_at=s.overdue_at,
    )  # fmt: skip


def supervision_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["alarms"])

    @r.get("/supervisions", response_model=list[SupervisionPublic])
    async def supervisions(
        ctx: Ctx,
        caller: Caller,
        status: Annotated[Status | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
        tenant: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[
            int | None, Query(ge=0, le=DB_INT_MAX, description="given at or after (epoch ms)")
        ] = None,
        until: Annotated[
            int | None, Query(ge=0, le=DB_INT_MAX, description="given before (epoch ms)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None, Query(ge=1, le=DB_INT_MAX, description="those of a number below this")
        ] = None,
    ) -> list[SupervisionPublic]:
        """The supervisions of the tenants the key sees (`tenant` narrows), newest first:
        `status=overdue` the ones to chase. Page with `before=<the last id of a page>`."""
        tenants = await record_scope(ctx, caller, tenant)
        found = await asyncio.to_thread(
            list_supervisions, ctx.statedb, tenants, status, since, until, limit, before
        )
        return [_public(s, ctx.registry) for s in found]

    @r.get("/supervisions/{supervision_id}", response_model=SupervisionPublic)
    async def supervision(supervision_id: _Id, ctx: Ctx, caller: Caller) -> SupervisionPublic:
        """One supervision (another tenant's is 404)."""
        found = await asyncio.to_thread(get_supervision, ctx.statedb, supervision_id)
        tenants = query_tenants(ctx, caller)
        if found is None or (tenants is not None and found.tenant not in tenants):
            raise not_found(f"supervision {supervision_id}")
        return _public(found, ctx.registry)

    return r
