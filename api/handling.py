"""How enterprises handled their alarms, for a supervisor's monthly review: per tenant, and per
site inside it, the alarms raised in a range of event time by peak tier, how many were
acknowledged and how fast, where their closed-loop disposal stands, how fast they were closed,
how many ever ran past a deadline, are still open, or were shelved and by whom; and the centre's
supervisions (报警督办) of those alarms: given, answered in time or late, overdue, undelivered.

The alarms counted are exactly those `GET /api/v1/alarms?start=&end=` lists (event time,
`started_ts`, in [start, end)), so the report adds up against the list and its CSV export.
Times to acknowledge and to close are counted from `raised_at`, the moment the hub knew of the
alarm (its arrival): that is when an operator could first react, and a reading replayed from a
gateway's spool hours late must not count those hours against the operator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from alerts.lifecycle import DISPOSAL_STEPS
from alerts.statedb import StateDB
from alerts.supervisionstate import COUNT_SQL, COUNTED
from alerts.table import TIER_RANK, TIERS

__all__ = ["HandlingPublic", "Percentiles", "handling_report", "nearest_rank"]

_RANK = " ".join(f"WHEN '{t}' THEN {i}" for t, i in TIER_RANK.items())
# one row per alarm of the range: where it stands now and what its journal says; the condition
# on (tenant, started_ts) is the alarms' index, the journal is read by alarm
_PER_ALARM = (
    "SELECT a.tenant, a.site, a.tier, a.raised_at, a.disposal, a.isa_state, "
    "MAX(CASE e.tier " + _RANK + " ELSE 0 END), "
    "MIN(CASE WHEN e.kind = 'acknowledged' THEN e.ts END), "
    "MIN(CASE WHEN e.kind IN ('closed', 'approved') THEN e.ts END), "
    "MAX(e.kind = 'overdue'), "
    "MAX(e.kind = 'shelved' OR (e.kind = 'raised' AND e.isa_state = 'shelved')), "
    "MIN(CASE WHEN e.kind = 'centre_acknowledged' THEN e.ts END) "
    "FROM alarms a LEFT JOIN alarm_events e ON e.alarm_id = a.id "
    "WHERE a.started_ts >= ? AND a.started_ts < ?"
)
_SHELVERS = (
    "SELECT a.tenant, a.site, e.actor, COUNT(DISTINCT a.id) "
    "FROM alarms a JOIN alarm_events e ON e.alarm_id = a.id "
    "WHERE a.started_ts >= ? AND a.started_ts < ? AND e.kind = 'shelved'"
)
# alarms raised shelved by a hub of before schema 5: a new activation of a point under a shelve
# made for an earlier alarm, whose own journal names no one (now its `shelved` event does)
_RAISED_SHELVED = (
    "SELECT a.tenant, a.site, COUNT(*) FROM alarms a JOIN alarm_events e ON e.alarm_id = a.id "
    "WHERE a.started_ts >= ? AND a.started_ts < ? AND e.kind = 'raised' "
    "AND e.isa_state = 'shelved' AND NOT EXISTS (SELECT 1 FROM alarm_events s "
    "WHERE s.alarm_id = a.id AND s.kind = 'shelved')"
)

# the centre's supervisions (报警督办) of the alarms of the range, by what became of them
_SUPERVISIONS = (
    f"SELECT a.tenant, a.site, {COUNT_SQL} FROM alarms a JOIN alarm_supervisions s "  # noqa: S608
    "ON s.alarm_id = a.id WHERE a.started_ts >= ? AND a.started_ts < ?"
)


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The `p` (0 < p <= 1) percentile by nearest rank: a value that occurred, the smallest
    with at least `p` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


class Percentiles(BaseModel):
    """Seconds: the median, the 90th percentile (nearest rank: times that occurred) and the
    longest."""

    n: int
    p50_s: float
    p90_s: float
    max_s: float


class ShelverPublic(BaseModel):
    actor: str | None  # None: raised shelved, under a shelve made for an earlier alarm
    alarms: int


class SupervisionCountsPublic(BaseModel):
    """The centre's supervisions (报警督办) of the alarms counted, by what became of them."""

    given: int
    answered_in_time: int = Field(description="the platform's first answer by the deadline")
    answered_late: int = Field(description="the platform's first answer after the deadline")
    overdue: int = Field(description="no answer, past the deadline (超期未应答)")
    undelivered: int = Field(
        description="no answer, the ticket never reached the platform (expired, dropped, no "
        "platform, not sent)"
    )
    open: int = Field(description="no answer yet, the deadline not passed")


class CountsPublic(BaseModel):
    raised: int
    peak_tier: dict[str, int]
    acknowledged: int = Field(description="acknowledged by the enterprise (the site's side)")
    ack: Percentiles | None = Field(description="the enterprise's time to acknowledge")
    centre_acknowledged: int = Field(
        description="acknowledged by the supervising centre, apart (its `centre_acknowledged` "
        "event; an alarm of a hub before the centre's own acknowledgement counts none)"
    )
    centre_ack: Percentiles | None = Field(description="the centre's time to acknowledge")
    disposal: dict[str, int]
    closed_time: Percentiles | None
    overdue_ever: int
    open: int
    shelved: int
    shelved_by: list[ShelverPublic]
    supervisions: SupervisionCountsPublic


class SiteHandlingPublic(CountsPublic):
    site: str
    site_name: str


class TenantHandlingPublic(CountsPublic):
    tenant: str
    tenant_name: str
    sites: list[SiteHandlingPublic]


class HandlingPublic(BaseModel):
    start: int
    end: int
    tenants: list[TenantHandlingPublic]
    total: CountsPublic


@dataclass(slots=True)
class _Tally:
    raised: int = 0
    peak: dict[str, int] = field(default_factory=lambda: dict.fromkeys(reversed(TIERS), 0))
    ack_s: list[float] = field(default_factory=list)
    centre_ack_s: list[float] = field(default_factory=list)
    disposal: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DISPOSAL_STEPS, 0))
    close_s: list[float] = field(default_factory=list)
    overdue: int = 0
    open: int = 0
    shelved: int = 0
    shelvers: dict[str | None, int] = field(default_factory=dict)
    supervisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    def add(self, row: Sequence[Any]) -> None:
        _, _, tier, raised_at, disposal, isa_state, peak, acked, closed, overdue, shelved, by = row
        self.raised += 1
        rank = max(int(peak or 0), TIER_RANK.get(tier, 0))
        self.peak[TIERS[rank]] += 1
        if acked is not None:
            self.ack_s.append(max(0, acked - raised_at) / 1000)
        if by is not None:  # (the centre's)
            self.centre_ack_s.append(max(0, by - raised_at) / 1000)
        self.disposal[disposal] = self.disposal.get(disposal, 0) + 1
        if closed is not None:
            self.close_s.append(max(0, closed - raised_at) / 1000)
        self.overdue += bool(overdue)
        self.open += not (isa_state == "normal" and disposal == "closed")
        self.shelved += bool(shelved)

    def merge(self, other: _Tally) -> None:
        self.raised += other.raised
        for k, v in other.peak.items():
            self.peak[k] += v
        self.ack_s += other.ack_s
        self.centre_ack_s += other.centre_ack_s
        for k, v in other.disposal.items():
            self.disposal[k] = self.disposal.get(k, 0) + v
        self.close_s += other.close_s
        self.overdue += other.overdue
        self.open += other.open
        self.shelved += other.shelved
        for actor, n in other.shelvers.items():
            self.shelvers[actor] = self.shelvers.get(actor, 0) + n
        for k, v in other.supervisions.items():
            self.supervisions[k] += v

    def counts(self) -> dict[str, Any]:
        return {
            "raised": self.raised,
            "peak_tier": self.peak,
            "acknowledged": len(self.ack_s),
            "ack": _percentiles(self.ack_s),
            "centre_acknowledged": len(self.centre_ack_s),
            "centre_ack": _percentiles(self.centre_ack_s),
            "disposal": self.disposal,
            "closed_time": _percentiles(self.close_s),
            "overdue_ever": self.overdue,
            "open": self.open,
            "shelved": self.shelved,
            "shelved_by": [
                ShelverPublic(actor=a, alarms=n)
                for a, n in sorted(self.shelvers.items(), key=lambda x: (-x[1], x[0] or ""))
            ],
            "supervisions": SupervisionCountsPublic(**self.supervisions),
        }


def _percentiles(values: list[float]) -> Percentiles | None:
    if not values:
        return None
    return Percentiles(
        n=len(values),
        p50_s=nearest_rank(values, 0.5),
        p90_s=nearest_rank(values, 0.9),
        max_s=max(values),
    )


def handling_report(
    db: StateDB,
    tenants: Sequence[str] | None,
    start_ms: int,
    end_ms: int,
    names: Mapping[tuple[str, str | None], str],
    only_site: str | None = None,
) -> HandlingPublic:
    """The report over `tenants` (those the caller sees, configured or not; None: every
    tenant) for alarms that started in [start_ms, end_ms), of `only_site` alone when given;
    `names` the configured tenant and site names by id."""
    among = "" if tenants is None else " AND a.tenant IN (" + ",".join("?" * len(tenants)) + ")"
    params: list[Any] = [start_ms, end_ms, *(tenants or ())]
    if only_site is not None:
        among += " AND a.site = ?"
        params.append(only_site)
    sites: dict[tuple[str, str], _Tally] = {}
    if tenants is None or tenants:
        for row in db.query(_PER_ALARM + among + " GROUP BY a.id", params):
            sites.setdefault((row[0], row[1]), _Tally()).add(row)
        # an alarm raised shelved was shelved by nobody in its own journal: the point's shelve
        # was made for an earlier alarm, whose journal says by whom
        for tenant, site, n in db.query(
            _RAISED_SHELVED + among + " GROUP BY a.tenant, a.site", params
        ):
            sites[(tenant, site)].shelvers[None] = int(n)
        by_actor = _SHELVERS + among + " GROUP BY a.tenant, a.site, e.actor"
        for tenant, site, actor, n in db.query(by_actor, params):
            sites[(tenant, site)].shelvers[actor] = int(n)
        for tenant, site, *n in db.query(
            _SUPERVISIONS + among + " GROUP BY a.tenant, a.site", params
        ):
            sites[(tenant, site)].supervisions = {
                k: int(v or 0) for k, v in zip(COUNTED, n, strict=True)
            }
    by_tenant: dict[str, list[tuple[str, _Tally]]] = {}
    for (tenant, site), tally in sorted(sites.items()):
        by_tenant.setdefault(tenant, []).append((site, tally))
    total = _Tally()
    out = []
    for tenant, its in by_tenant.items():
        whole = _Tally()
        for _, tally in its:
            whole.merge(tally)
        total.merge(whole)
        out.append(
            TenantHandlingPublic(
                tenant=tenant,
                tenant_name=names.get((tenant, None), ""),
                **whole.counts(),
                sites=[
                    SiteHandlingPublic(
                        site=site, site_name=names.get((tenant, site), ""), **tally.counts()
                    )
                    for site, tally in its
                ],
            )
        )
    return HandlingPublic(
        start=start_ms, end=end_ms, tenants=out, total=CountsPublic(**total.counts())
    )
