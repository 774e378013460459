"""Lock-out tests over HTTP (`alerts.locktests`): an enterprise records each test of a
protective-action plan's lock-out (甲烷电闭锁, 风电闭锁: every 15 days, AQ 1029 revision), passed
or failed, and lists them. A test recorded clears the plan's `lock_test_overdue` alarm (passed)
or raises it (failed) at once (`alerts.lockalarms`). Recording is the enterprise's (its own
tenants' plans; another's is 404); every key lists the tests of the tenants it sees.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.lockalarms import LockTestAlarms, NotAPlanError
from alerts.locktests import MAX_AGE_MS, LockTest, list_tests
from api.bounds import DB_INT_MAX, FUTURE_SKEW_MS
from api.context import (
    WRITE,
    Caller,
    Ctx,
    WriteGuard,
    not_found,
    query_tenants,
    record_scope,
)
from api.notes import Note
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["LockTestIn", "LockTestPublic", "lock_test_router"]

log = logging.getLogger(__name__)


class LockTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sensor: str = Field(
        min_length=1,
        max_length=200,
        description="the plan's sensor: the one whose `verify:` is the lock-out tested (the T1 "
        "methane sensor for 甲烷电闭锁, the local fan's for 风电闭锁)",
    )
    # (strict: this is a safety record; "yes", 1 or "1796..." are refused, not read as a test)
    ts: int = Field(
        ge=1,
        le=DB_INT_MAX,
        strict=True,
        description="when the test was made, ms since the epoch (a JSON integer; at most a "
        "minute ahead of the hub's clock and at most 366 days behind it)",
    )
    passed: bool = Field(
        strict=True, description="true (JSON true): the lock-out cut the power in time"
    )
    note: Note = Field(
        default="",
        description="what was done and seen (test gas, breaker, feed); required for a failed test",
    )

    @model_validator(mode="after")
    def _failure_said(self) -> LockTestIn:
        if not self.passed and not self.note:
            raise ValueError(
                "a failed test needs a note: what failed and what is done about it "
                "(闭锁测试未通过须填写说明)"
            )
        return self


class LockTestPublic(BaseModel):
    id: int
    tenant: str
    sensor: str
    ts: int = Field(description="when the test was made, ms since the epoch")
    passed: bool
    note: str
    actor: str | None = Field(
        description="the API key that recorded it; null: the hub, from a protective action "
        "confirmed in time (保护动作已确认)"
    )
    source: str = Field(
        description="api: recorded by a person; action: the hub's, from a real demand (a "
        "protective action confirmed in time: passed; action_failed or confirmed late: failed)"
    )
    recorded_at: int = Field(description="when the hub recorded it, ms since the epoch")


class LockTestRecorded(BaseModel):
    test: LockTestPublic
    alarm_events: int = Field(
        description="the alarm events the test made on the plan's lock_test_overdue alarm "
        "(its raise, escalation, clear or a journal line)"
    )


def _public(t: LockTest) -> LockTestPublic:
    return LockTestPublic.model_validate(t, from_attributes=True)


def lock_test_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1", tags=["lock-tests"])

    @r.post(
        "/lock-tests",
        response_model=LockTestRecorded,
        status_code=status.HTTP_201_CREATED,
        dependencies=WRITE,
    )
    async def record_lock_test(
        body: LockTestIn, ctx: Ctx, caller: Caller, response: Response
    ) -> LockTestRecorded:
        """Record a test of a plan's lock-out (enterprise keys, for their own tenants' plans):
        a passed test clears the plan's `lock_test_overdue` alarm, a failed one raises it
        (orange, `lock_test_failed`) or adds the failure to its journal. The same test posted
        again (the plan, `ts`, `passed` and key) is 200 with the test recorded first."""
        if caller.role != "enterprise":
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "lock-out tests are recorded by the enterprise that made them (an enterprise "
                "key of the plan's tenant)",
            )
        refuse_seconds(ts=body.ts)
        now = wall_ms()
        if body.ts > now + FUTURE_SKEW_MS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"ts={body.ts} is later than the hub's clock ({now} ms) by more than "
                f"{FUTURE_SKEW_MS // 1000} s: a test is recorded once it is made",
            )
        if body.ts < now - MAX_AGE_MS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"ts={body.ts} is more than {MAX_AGE_MS // 86_400_000} days before the hub's "
                f"clock ({now} ms): a test that old makes no plan current (check the time)",
            )
        locks = LockTestAlarms(ctx.statedb, ctx.registry, ctx.registry.config.notify.disposal)
        try:
            test, events, new = await asyncio.to_thread(
                locks.record,
                body.sensor,
                query_tenants(ctx, caller),
                body.ts,
                body.passed,
                body.note,
                caller.name,
                now,
            )
        except NotAPlanError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"sensor {body.sensor!r} has no protective-action plan (`verify:`): its lock-out "
                "tests are recorded on the plan's sensor",
            ) from exc
        except LookupError as exc:
            raise not_found(f"sensor {body.sensor!r}") from exc
        if not new:
            response.status_code = status.HTTP_200_OK
            return LockTestRecorded(test=_public(test), alarm_events=0)
        log.info(
            "lock test of %s/%s recorded by %s: %s",
            test.tenant,
            test.sensor,
            caller.name,
            "passed" if test.passed else "failed",
        )
        await ctx.on_events(events)
        return LockTestRecorded(test=_public(test), alarm_events=len(events))

    @r.get("/lock-tests", response_model=list[LockTestPublic])
    async def lock_tests(
        ctx: Ctx,
        caller: Caller,
        tenant: Annotated[str | None, Query(max_length=200)] = None,
        sensor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None,
            Query(
                ge=1,
                le=DB_INT_MAX,
                description="the tests recorded before this test id (the "
                "next page: the last id of the page before)",
            ),
        ] = None,
    ) -> list[LockTestPublic]:
        """The lock-out tests of the tenants the key sees (`tenant` narrows, `sensor` names
        one plan), newest recorded first: a person's and the hub's (a protective action
        confirmed in time, or failed). Page with `before=<the last id of a page>`."""
        tenants = await record_scope(ctx, caller, tenant)
        if sensor is not None:
            info = ctx.registry.sensor(sensor)
            seen = info is not None and (tenants is None or info.tenant in tenants)
            if not seen:
                found = await asyncio.to_thread(list_tests, ctx.statedb, tenants, sensor, 1)
                if not found:
                    raise not_found(f"sensor {sensor!r}")
        rows = await asyncio.to_thread(list_tests, ctx.statedb, tenants, sensor, limit, before)
        return [_public(t) for t in rows]

    return r
