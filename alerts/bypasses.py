"""Interlock bypass approvals (联锁旁路/摘除审批, DOMAIN 2.4: "bypass_flag per SIS loop, with
approval record"): the record of each written approval of a loop's bypass (who approved it, why,
the interim measures, from when until when), its revocation, and the verdict on a bypass in
effect, pure, that `alerts.bypassalarms` turns into the `bypass_unapproved` alarm.

An approval names the bypass flag's sensor: one whose rule has a level named `bypassed...` (a
trip flag, of kind interlock too, has none: an approval of it would mean nothing). The table
`bypass_approvals` is the audit record: a row is never deleted, and of its columns only the
revocation is ever written, once (triggers refuse the rest).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.alarmchange import cst
from alerts.statedb import StateDB
from telemetry.registry import SensorInfo

__all__ = [
    "BACKDATE_MS",
    "BYPASS_PREFIX",
    "CENTRE",
    "ENTERPRISE",
    "MAX_OPEN",
    "MAX_SPAN_MS",
    "BypassApproval",
    "BypassVerdict",
    "bypass_sensor",
    "covering",
    "get_approval",
    "hours_bypassed",
    "insert_approval",
    "list_approvals",
    "open_approvals",
    "revoke_approval",
    "sensor_approvals",
    "verdict",
]

# a level whose name begins so is a bypass in effect (the chem-process pack's `bypassed`,
# `bypassed_too_long`, and the word rule `interlock`'s `bypassed`)
BYPASS_PREFIX = "bypassed"
HOUR_MS = 3_600_000
# an approval covers at most this long (30 days): a longer bypass is approved again, in writing
MAX_SPAN_MS = 30 * 24 * HOUR_MS
# at most this many approvals of a sensor not ended (until later, not revoked) at once: the
# papers of the bypasses planned ahead, not an unbounded pile to judge
MAX_OPEN = 20
# an approval begins at most this long (24 h) before it is recorded: the paper of an emergency
# bypass recorded late (`approve_within_s` is at most 24 h too), never a month's history
BACKDATE_MS = 24 * HOUR_MS
# who recorded an approval (`party`): the enterprise's key, or the supervising centre's
ENTERPRISE = "enterprise"
CENTRE = "centre"
_COLS = (
    "id, tenant, sensor, approved_by, reason, measures, ticket, valid_from, until, actor, "
    "recorded_at, revoked_at, revoked_by, revoke_note, party"
)
_SECONDS = "%Y-%m-%d %H:%M:%S CST"


def bypass_sensor(info: SensorInfo) -> bool:
    """Whether a sensor is a bypass flag an approval may name: judged by a rule with a level
    named `bypassed...` (what `bypass_unapproved` follows; a trip flag has none)."""
    return any(lv.name.startswith(BYPASS_PREFIX) for lv in info.levels)


@dataclass(frozen=True, slots=True)
class BypassApproval:
    """One written approval of a loop's bypass: `valid_from` .. `until` (ms, `until`
    excluded) unless revoked before; `actor` the API key that recorded it, at `recorded_at`;
    `party` whose key that was (`ENTERPRISE` or `CENTRE`; None: recorded before the hub kept
    it)."""

    id: int
    tenant: str
    sensor: str
    approved_by: str
    reason: str
    measures: str  # the interim measures while bypassed (临时措施)
    ticket: str | None  # the approval form's or work permit's number (审批单号)
    valid_from: int
    until: int
    actor: str
    recorded_at: int
    revoked_at: int | None
    revoked_by: str | None
    revoke_note: str | None
    party: str | None

    def end(self) -> int:
        """When it stops covering: its `until`, or its revocation when earlier."""
        return self.until if self.revoked_at is None else min(self.until, self.revoked_at)

    def covers(self, now: int) -> bool:
        return self.valid_from <= now < self.end()

    def said(self) -> str:
        """The approval as an alarm's journal says it."""
        ticket = f" {self.ticket}" if self.ticket else ""
        return (
            f"旁路审批 approval #{self.id}{ticket} by {self.approved_by}, "
            f"{cst(self.valid_from, _SECONDS)} - {cst(self.until, _SECONDS)} "
            f"(recorded by {_PARTY_SAID.get(self.party or '', 'key')} {self.actor}): "
            f"{self.reason}; 临时措施 interim measures: "
            f"{self.measures}"
        )


_PARTY_SAID: dict[str, str] = {
    ENTERPRISE: "企业 the enterprise's key",
    CENTRE: "监管中心 the centre's key",
}


def _approval(row: Sequence[object]) -> BypassApproval:
    (i, tenant, sensor, by, reason, measures, ticket, start, until, actor, at, rev_at, rev_by,
     rev_note, party) = row  # fmt: skip
    return BypassApproval(
        int(str(i)),
        str(tenant),
        str(sensor),
        str(by),
        str(reason),
        str(measures),
        None if ticket is None else str(ticket),
        int(str(start)),
        int(str(until)),
        str(actor),
        int(str(at)),
        None if rev_at is None else int(str(rev_at)),
        None if rev_by is None else str(rev_by),
        None if rev_note is None else str(rev_note),
        None if party is None else str(party),
    )


def insert_approval(
    con: sqlite3.Connection,
    tenant: str,
    sensor: str,
    approved_by: str,
    reason: str,
    measures: str,
    ticket: str | None,
    valid_from: int,
    until: int,
    actor: str,
    recorded_at: int,
    party: str = ENTERPRISE,
) -> BypassApproval:
    """Record an approval (in the caller's transaction), by a key of `party`."""
    cur = con.execute(
        "INSERT INTO bypass_approvals (tenant, sensor, approved_by, reason, measures, ticket, "
        "valid_from, until, actor, recorded_at, party) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant, sensor, approved_by, reason, measures, ticket, valid_from, until, actor,
         recorded_at, party),
    )  # fmt: skip
    return BypassApproval(
        int(cur.lastrowid or 0), tenant, sensor, approved_by, reason, measures, ticket,
        valid_from, until, actor, recorded_at, None, None, None, party,
    )  # fmt: skip


def get_approval(con: sqlite3.Connection, approval_id: int) -> BypassApproval | None:
    row = con.execute(
        "SELECT " + _COLS + " FROM bypass_approvals WHERE id = ?",  # noqa: S608
        (approval_id,),
    ).fetchone()
    return None if row is None else _approval(row)


def revoke_approval(con: sqlite3.Connection, approval_id: int, at: int, by: str, note: str) -> bool:
    """Revoke an approval at `at` (in the caller's transaction); False when it was revoked
    already (the first revocation stands)."""
    cur = con.execute(
        "UPDATE bypass_approvals SET revoked_at = ?, revoked_by = ?, revoke_note = ? "
        "WHERE id = ? AND revoked_at IS NULL",
        (at, by, note, approval_id),
    )
    return bool(cur.rowcount)


# when an approval stops covering (its until, or its revocation when earlier), as the index
# `bypass_approvals_end` has it (of those that covered a moment at all: `_COVERED`)
_END = "min(until, coalesce(revoked_at, until))"
_COVERED = f"tenant = ? AND sensor = ? AND valid_from < {_END}"
_SELECT = "SELECT " + _COLS + " FROM bypass_approvals WHERE " + _COVERED  # noqa: S608
_SENSOR_COVER = (
    _SELECT + f" AND {_END} > ? AND valid_from <= ? ORDER BY {_END} DESC, id DESC LIMIT 1"
)
_SENSOR_ENDED = _SELECT + f" AND {_END} > ? AND {_END} <= ? ORDER BY {_END} DESC, id DESC LIMIT 1"
_SENSOR_OPEN = (
    f"SELECT COUNT(*) FROM (SELECT 1 FROM bypass_approvals WHERE {_COVERED} "  # noqa: S608
    f"AND {_END} > ? AND revoked_at IS NULL LIMIT ?)"
)


def sensor_approvals(
    con: sqlite3.Connection, tenant: str, sensor: str, since: int, now: int
) -> list[BypassApproval]:
    """The approvals of a sensor that `verdict` reads for a bypass since `since`, at most two:
    the one covering `now` that runs longest, and the last one that stopped covering after
    `since` (by `now`); two probes of an index, whatever the sensor's approvals ahead or
    revoked."""
    found = [
        con.execute(_SENSOR_COVER, (tenant, sensor, now, now)).fetchone(),
        con.execute(_SENSOR_ENDED, (tenant, sensor, since, now)).fetchone(),
    ]
    return [_approval(r) for r in found if r is not None]


def open_approvals(con: sqlite3.Connection, tenant: str, sensor: str, now: int, upto: int) -> int:
    """How many approvals of a sensor have not ended at `now` (their until later, not
    revoked; begun or ahead), counted up to `upto`."""
    row = con.execute(_SENSOR_OPEN, (tenant, sensor, now, upto)).fetchone()
    return int(row[0])


def covering(approvals: Sequence[BypassApproval], now: int) -> BypassApproval | None:
    """The approval covering `now` that runs longest, if any."""
    found = [a for a in approvals if a.covers(now)]
    return max(found, key=lambda a: (a.end(), a.id)) if found else None


def list_approvals(
    db: StateDB,
    tenants: Sequence[str] | None,
    sensor: str | None,
    active_at: int | None,
    active: bool | None,
    limit: int,
    before: int | None = None,
    party: str | None = None,
) -> list[BypassApproval]:
    """The approvals of `tenants` (None: every tenant), of one sensor when given, newest
    recorded first; `active` True: those covering `active_at`, False: those not covering it;
    with `before`, those recorded before the approval of that id (the next page); with
    `party`, those recorded by that party's keys."""
    if tenants is not None and not tenants:
        return []
    clauses: list[str] = []
    params: list[object] = []
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    if tenants is not None:
        clauses.append("tenant IN (" + ",".join("?" * len(tenants)) + ")")
        params += list(tenants)
    if sensor is not None:
        clauses.append("sensor = ?")
        params.append(sensor)
    if party is not None:
        clauses.append("party = ?")
        params.append(party)
    if active is not None and active_at is not None:
        cover = "(valid_from <= ? AND until > ? AND (revoked_at IS NULL OR revoked_at > ?))"
        clauses.append(cover if active else "NOT " + cover)
        params += [active_at, active_at, active_at]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = "SELECT " + _COLS + " FROM bypass_approvals" + where  # noqa: S608
    sql += " ORDER BY id DESC LIMIT ?"
    return [_approval(r) for r in db.query(sql, [*params, limit])]


def hours_bypassed(start: int, ts: int) -> float:
    """The hours a bypass since `start` has lasted at `ts` (an event's own time), 0.01 h."""
    return round(max(0, ts - start) / HOUR_MS, 2)


@dataclass(frozen=True, slots=True)
class BypassVerdict:
    """What a bypass and its approvals say at `now`: 1 (unapproved) or 0, the event time of
    the change, the hours bypassed at that time (NaN: not bypassed, unknown here), and the
    journal's words."""

    level: int
    ts: int
    hours: float
    said: str


def verdict(
    start: int | None,
    approvals: Sequence[BypassApproval],
    within_ms: int,
    now: int,
) -> BypassVerdict:
    """The verdict on a sensor's bypass in effect since `start` (None: not bypassed): 1 when
    no approval covers `now` and `within_ms` have passed since `start`, stamped with the
    moment it became so (the grace's end, or the end of the last approval of this bypass when
    later); else 0, stamped with the approval's cover (when one covers now) or `now`."""
    if start is None:
        return BypassVerdict(0, now, math.nan, "联锁旁路已恢复 the bypass ended")
    since = f"bypassed since {cst(start, _SECONDS)}"
    cover = covering(approvals, now)
    if cover is not None:
        ts = min(now, max(start, cover.valid_from, cover.recorded_at))
        said = f"旁路已审批 approved ({since}): {cover.said()}"
        return BypassVerdict(0, ts, hours_bypassed(start, ts), said)
    due = start + within_ms
    if now < due:  # (an alarm of a bypass before: this one is new, within its grace)
        return BypassVerdict(
            0,
            now,
            hours_bypassed(start, now),
            f"联锁旁路重新开始 a new bypass ({since}), within its grace",
        )
    ended = [a for a in approvals if start < a.end() <= now and a.valid_from < a.end()]
    last = max(ended, key=lambda a: (a.end(), a.id)) if ended else None
    if last is None:
        why = f"无审批 no approval given within {within_ms // 1000} s"
        said = f"联锁旁路未审批 bypass unapproved ({since}): {why}"
        return BypassVerdict(1, due, hours_bypassed(start, due), said)
    if last.revoked_at is not None and last.revoked_at < last.until:
        why = (
            f"审批已撤销 approval #{last.id} revoked at {cst(last.revoked_at, _SECONDS)} by "
            f"{last.revoked_by}: {last.revoke_note}"
        )
    else:
        why = f"审批已过期 approval #{last.id} expired at {cst(last.until, _SECONDS)}"
    ts = max(due, last.end())
    said = f"联锁旁路未审批 bypass unapproved ({since}): {why}"
    return BypassVerdict(1, ts, hours_bypassed(start, ts), said)
