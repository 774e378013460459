"""The hidden-danger ledger's periodic statistics over HTTP (`alerts.hazardstats`, DOMAIN 6: the
quarterly analysis to the regulator by the 15th of the next quarter, the annual one by 31 Jan):
`GET /api/v1/hazards/stats` per tenant the caller sees and in total, for a period given in ms
(`from`, `to`) or as a quarter (`2026Q4`) or a year (`2026`) in China time (+08:00); as JSON
or as CSV for the report (UTF-8 with a byte-order mark, as the alarm list's)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from alerts.hazardstats import COUNTS, StatsRow, hazard_stats, rate
from api.alarmcsv import iso_beijing
from api.context import Caller, Ctx, not_found, query_tenants
from api.csvfile import csv_bytes
from api.timerange import refuse_seconds
from telemetry.clock import wall_ms

__all__ = ["STATS_COLUMNS", "HazardStats", "hazard_stats_router", "period_of"]

_CST = timezone(timedelta(hours=8), "CST")
# the last ms a period may name: 9999-12-31 23:59:59.999 China time (the calendar's end, which
# the CSV writes as a date)
LAST_MS = 253_402_271_999_999
TOTAL = "total"
STATS_COLUMNS: tuple[str, ...] = (
    "tenant",
    "tenant_name",
    "period",
    "from",
    "from_ms",
    "to",
    "to_ms",
    *COUNTS,
    "rectification_rate",
)


class HazardStats(BaseModel):
    period: str = Field(description="2026Q4, 2026, or '' for a range given in ms")
    from_ms: int = Field(alias="from", description="ms, inclusive")
    to_ms: int = Field(alias="to", description="ms, exclusive")
    as_of: int = Field(description="'at the end' judged at: the end, or now when it is ahead")
    tenants: list[dict[str, Any]] = Field(description="one row per tenant: its counts")
    total: dict[str, Any] = Field(description="the rows' sums, tenant 'total'")

    model_config = {"populate_by_name": True}


def _month_start(year: int, month: int) -> int:
    while month > 12:
        year, month = year + 1, month - 12
    return int(datetime(year, month, 1, tzinfo=_CST).timestamp() * 1000)


def period_of(
    start: int | None, end: int | None, quarter: str | None, year: int | None, now: int
) -> tuple[int, int, str]:
    """The period [start, end) in ms and its label: `from` and `to` (both), a quarter, a year
    (China time), or none of them: the quarter in progress (China time). 422 for two of them,
    or an end not after the start."""
    forms = (start is not None or end is not None) + (quarter is not None) + (year is not None)
    if forms > 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "give one period: from= and to= (ms), quarter= (2026Q4) or year= (2026)",
        )
    if start is not None or end is not None:
        if start is None or end is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "give both from= and to= (ms since the epoch)",
            )
        refuse_seconds(**{"from": start, "to": end})
        if end <= start:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to must be after from")
        return start, end, ""
    if year is not None:
        return _month_start(year, 1), _month_start(year + 1, 1), str(year)
    if quarter is None:
        today = datetime.fromtimestamp(now / 1000, _CST)
        quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    y, q = int(quarter[:4]), int(quarter[5])
    first = 3 * (q - 1) + 1
    return _month_start(y, first), _month_start(y, first + 3), quarter


def _names(ctx: Ctx) -> dict[str, str]:
    return {t.id: t.name or "" for t in ctx.registry.config.tenants}


def _json_row(row: StatsRow, name: str) -> dict[str, Any]:
    return {
        "tenant": row.tenant,
        "tenant_name": name,
        **row.counts,
        "rectification_rate": rate(row),
    }


def _csv(rows: list[dict[str, Any]], answer: HazardStats) -> bytes:
    """The rows as CSV (every cell through `api.csvfile.safe_cell`: a tenant's name is typed by
    an admin of that tenant, and "=HYPERLINK(...)" ran in the centre's spreadsheet)."""
    return csv_bytes(
        STATS_COLUMNS,
        (
            [
                r["tenant"], r["tenant_name"], answer.period,
                iso_beijing(answer.from_ms), answer.from_ms,
                iso_beijing(answer.to_ms), answer.to_ms,
                *(r[c] for c in COUNTS),
                "" if r["rectification_rate"] is None else r["rectification_rate"],
            ]
            for r in rows
        ),
    )  # fmt: skip


def hazard_stats_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["hazards"])

    @r.get("/hazards/stats", response_model=HazardStats, response_model_by_alias=True)
    async def stats(
        ctx: Ctx,
        caller: Caller,
        start: Annotated[
            int | None, Query(alias="from", ge=0, le=LAST_MS, description="ms, inclusive")
        ] = None,
        end: Annotated[
            int | None, Query(alias="to", ge=0, le=LAST_MS, description="ms, exclusive")
        ] = None,
        quarter: Annotated[
            str | None,
            Query(pattern=r"^2\d{3}Q[1-4]$", description="a quarter in China time: 2026Q4"),
        ] = None,
        year: Annotated[
            int | None, Query(ge=2000, le=2999, description="a year in China time: 2026")
        ] = None,
        tenant: Annotated[str | None, Query(max_length=200)] = None,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Any:
        """The ledger's statistics of a period, per tenant the key sees and in total: items
        found by grade and source, closed (销号) by their deadline or after it, open at the end
        by status, overdue at the end, major items with a production stop, and the
        rectification rate (整改率, found and closed / found, %). Counted from the audit as
        the items were; `format=csv` for the report."""
        now = wall_ms()
        begin, finish, label = period_of(start, end, quarter, year, now)
        names = _names(ctx)
        tenants = query_tenants(ctx, caller)
        if tenant is not None:
            on_record = tenant in names or bool(
                await asyncio.to_thread(
                    ctx.statedb.query, "SELECT 1 FROM hazards WHERE tenant = ? LIMIT 1", (tenant,)
                )
            )
            if not caller.sees(tenant) or not on_record:
                raise not_found(f"tenant {tenant!r}")
            tenants = [tenant]
        as_of = min(finish, now)
        rows = await asyncio.to_thread(hazard_stats, ctx.statedb, tenants, begin, finish, as_of)
        if tenants is None:  # every configured tenant, none found or not
            for t in names:
                rows.setdefault(t, StatsRow(t))
        kept = [
            rows[t]
            for t in sorted(rows)
            if t in names or t == tenant or any(rows[t].counts.values())
        ]
        total = StatsRow(TOTAL)
        for row in kept:
            total.add(row)
        answer = HazardStats.model_validate(
            {
                "period": label,
                "from": begin,
                "to": finish,
                "as_of": as_of,
                "tenants": [_json_row(row, names.get(row.tenant, "")) for row in kept],
                "total": _json_row(total, "合计"),
            }
        )
        if format == "json":
            return answer
        body = _csv([*answer.tenants, answer.total], answer)
        name = f"hazard-stats_{label or f'{begin}_{finish}'}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return r
