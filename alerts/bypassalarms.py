"""The `bypass_unapproved` alarm of an interlock's bypass flag (`alerts.bypasses`): raised
(orange) on the flag's sensor when its bypass is in effect (an active alarm of the sensor at a
level named `bypassed...`, since that alarm's start in event time) and no written approval
covers now, once `approve_within_s` (`interlock_bypass:` in the configuration) have passed since
the bypass began; cleared by an approval covering now or by the bypass ending; an approval that
expires (or is revoked) while the bypass lasts raises it again then. One active per sensor (its
sensor, rule and kind), written through the alarm rows as every alarm is (journaled, notified,
acknowledged). The hub's clock judges it (`step`, on the dispatcher's every tick: a probe of an
index of the active alarms by level name, nothing more while no loop is bypassed), and an
approval recorded or revoked through the API at once (`record`, `revoke`). Its verdict comes
from the state database alone, so a restart raises nothing twice."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from alerts.alarmchange import AlarmRows
from alerts.alarmevent import AlarmBatch, AlarmEvent
from alerts.bypasses import (
    BYPASS_PREFIX,
    CENTRE,
    MAX_OPEN,
    BypassApproval,
    bypass_sensor,
    get_approval,
    hours_bypassed,
    insert_approval,
    open_approvals,
    revoke_approval,
    sensor_approvals,
    verdict,
)
from alerts.gatewayalarms import NORMAL
from alerts.kinds import ABOVE, BELOW, BYPASS_UNAPPROVED
from alerts.statedb import StateDB
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry

__all__ = ["BypassAlarms", "CentresApprovalError", "NotABypassError", "TooManyApprovalsError"]

SANE_MS = 1_577_836_800_000  # a clock before 2020 is wrong: it judges nothing
LEVEL = "bypass_unapproved"
_DESCRIBED = (
    LEVEL,
    "orange",
    "联锁旁路未审批: 立即补办并登记旁路审批 (审批人, 原因, 临时措施, 期限), 否则恢复联锁 record "
    "the bypass's written approval (who approved it, why, the interim measures, until when), or "
    "restore the interlock",
)
# the active alarms that matter: ours, and those at a bypass level (every name beginning with
# 'bypassed': 'bypassed' <= name < 'bypassee'), in one range of `alarms_active_level` from ours
# ('bypass_unapproved' sorts before 'bypassed'; the few other names between are skipped)
_UPTO = BYPASS_PREFIX[:-1] + chr(ord(BYPASS_PREFIX[-1]) + 1)
_PROBE = (
    "SELECT tenant, site, device, sensor, rule, side, level_name, started_ts FROM alarms "
    "WHERE state = 'active' AND level_name >= ? AND level_name < ?"
)
_PROBE_ARGS = (min(LEVEL, BYPASS_PREFIX), _UPTO)
# the end (event time) of the sensor's last bypass that began before `started_ts`
_ENDED = (
    "SELECT started_ts, ended_ts FROM alarms WHERE sensor = ? AND rule = ? AND side IN (?, ?) "
    "AND state = 'cleared' AND level_name >= ? AND level_name < ? AND started_ts <= ? "
    "ORDER BY id DESC LIMIT 1"
)


class NotABypassError(LookupError):
    """The sensor is no bypass flag (its rule has no level named `bypassed...`)."""


class TooManyApprovalsError(ValueError):
    """The sensor has `MAX_OPEN` approvals not ended already (until later, not revoked)."""


class CentresApprovalError(PermissionError):
    """An approval the supervising centre recorded, revoked by another party's key: nothing the
    enterprise does alters the centre's record (one recorded before the hub kept the party:
    the centre's keys, or the key that recorded it)."""


@dataclass(frozen=True, slots=True)
class _Change:
    key: tuple[str, str, str, str, str, int]
    level: int
    ts: int
    hours: float
    said: str


# a point: (site, device, started_ts) of an active alarm, by (tenant, sensor, rule)
_Points = dict[tuple[str, str, str], tuple[str, str, int]]


class BypassAlarms(AlarmRows):
    def __init__(
        self, db: StateDB, registry: Registry, disposal: DisposalSpec | None = None
    ) -> None:
        super().__init__(registry, disposal)
        self._db = db
        self._within_ms = round(registry.config.interlock_bypass.approve_within_s * 1000)

    def step(self, now: int) -> list[AlarmEvent]:
        """On the clock's tick: judge the bypasses in effect and the sensors with the alarm,
        first on the reading connection; a write transaction only when something changes.
        Raise AlarmStoreError."""
        if now < SANE_MS:
            return []
        with self._db.snapshot() as con:
            if not self._wanted(con, now, None):
                return []
        return self.judge(now)

    def judge(self, now: int, sensors: set[str] | None = None) -> list[AlarmEvent]:
        """Raise or clear the alarm of each sensor (of `sensors`; None: every one) as its bypass
        and approvals say at `now` (the hub's clock), in one transaction."""
        if now < SANE_MS:
            return []
        with self._db.transaction() as con:
            return self._apply(con, now, sensors)

    def record(
        self,
        sensor: str,
        tenants: list[str] | None,
        fields: tuple[str, str, str, str | None, int, int],
        actor: str,
        now: int,
        party: str,
    ) -> tuple[BypassApproval, list[AlarmEvent]]:
        """Record an approval of the bypass of `sensor` (one of `tenants`' sensors, None: any):
        `fields` (approved_by, reason, measures, ticket, valid_from, until), recorded by
        `actor`, a key of `party` (`ENTERPRISE` or `CENTRE`), and judge the
        sensor at once (an approval covering now clears its alarm). Raise LookupError for a
        sensor not found (or another tenant's), NotABypassError for one that is no bypass flag,
        TooManyApprovalsError for one with `MAX_OPEN` approvals not ended,
        AlarmStoreError."""
        info = self._registry.sensor(sensor)
        if info is None or (tenants is not None and info.tenant not in tenants):
            raise LookupError(sensor)
        if not bypass_sensor(info):
            raise NotABypassError(sensor)
        by, reason, measures, ticket, valid_from, until = fields
        with self._db.transaction() as con:
            if open_approvals(con, info.tenant, info.id, now, MAX_OPEN) >= MAX_OPEN:
                raise TooManyApprovalsError(sensor)
            approval = insert_approval(
                con, info.tenant, info.id, by, reason, measures, ticket, valid_from, until,
                actor, now, party,
            )  # fmt: skip
            events = self._apply(con, now, {info.id})
        return approval, events

    def revoke(
        self,
        approval_id: int,
        tenants: list[str] | None,
        note: str,
        actor: str,
        now: int,
        party: str,
    ) -> tuple[BypassApproval, list[AlarmEvent], bool]:
        """Revoke an approval (one of `tenants`', None: any) at `now` and judge its sensor at
        once (a bypass left without an approval past its grace raises the alarm); False with no
        events when it was revoked already (its first revocation stands). Raise LookupError for
        an approval not found (or another tenant's), CentresApprovalError for one the centre
        recorded revoked by a key not of `party` `CENTRE`, AlarmStoreError."""
        with self._db.transaction() as con:
            found = get_approval(con, approval_id)
            if found is None or (tenants is not None and found.tenant not in tenants):
                raise LookupError(approval_id)
            if party not in (CENTRE, found.party) and (found.party or found.actor != actor):
                raise CentresApprovalError(approval_id)
            if not revoke_approval(con, approval_id, now, actor, note):
                return found, [], False
            events = self._apply(con, now, {found.sensor})
            after = get_approval(con, approval_id)
        assert after is not None
        return after, events, True

    def _apply(
        self, con: sqlite3.Connection, now: int, sensors: set[str] | None
    ) -> list[AlarmEvent]:
        changes = self._wanted(con, now, sensors)
        if not changes:
            return []
        work = AlarmBatch.over(self._db, con, {c.key[3] for c in changes}, now)
        for c in changes:
            described = _DESCRIBED if c.level else NORMAL
            self._change(work, c.key, c.level, described, c.ts, c.hours, now, comment=c.said)
        return work.write(self._db, self._disposal)

    def _points(self, con: sqlite3.Connection, sensors: set[str] | None) -> tuple[_Points, _Points]:
        """The bypasses in effect (of sensors configured so) and the alarms of ours, active."""
        bypassed: _Points = {}
        ours: _Points = {}
        for tenant, site, device, sensor, rule, side, name, started in con.execute(
            _PROBE, _PROBE_ARGS
        ).fetchall():
            if sensors is not None and sensor not in sensors:
                continue
            key = (str(tenant), str(sensor), str(rule))
            if int(side) == BYPASS_UNAPPROVED and name == LEVEL:
                ours[key] = (str(site), str(device), int(started))
                continue
            if int(side) not in (ABOVE, BELOW) or not str(name).startswith(BYPASS_PREFIX):
                continue
            info = self._registry.sensor_of(key[0], key[1], str(site), str(device))
            if info is None or info.rule != key[2]:
                continue  # a point gone or judged otherwise now: its alarms are retired
            was = bypassed.get(key)
            if was is None or int(started) < was[2]:
                bypassed[key] = (str(site), str(device), int(started))
        return bypassed, ours

    def _wanted(self, con: sqlite3.Connection, now: int, sensors: set[str] | None) -> list[_Change]:
        """The changes the bypasses and their approvals ask for at `now`."""
        bypassed, ours = self._points(con, sensors)
        out: list[_Change] = []
        for key in sorted(bypassed.keys() | ours.keys()):
            tenant, sensor, rule = key
            b, o = bypassed.get(key), ours.get(key)
            start = None if b is None else b[2]
            approvals = [] if start is None else sensor_approvals(con, tenant, sensor, start, now)
            v = verdict(start, approvals, self._within_ms, now)
            if v.level == (0 if o is None else 1):
                continue
            if v.level:
                assert b is not None
                point = (tenant, b[0], b[1], sensor, rule, BYPASS_UNAPPROVED)
                out.append(_Change(point, 1, v.ts, v.hours, v.said))
                continue
            assert o is not None
            ts, hours = v.ts, v.hours
            if b is None:  # the bypass ended: when its alarm did, in event time, how long
                row = con.execute(
                    _ENDED, (sensor, rule, ABOVE, BELOW, BYPASS_PREFIX, _UPTO, o[2])
                ).fetchone()
                if row is None or row[1] is None:
                    ts = now  # (its alarm gone: when, and how long, unknown; no value)
                else:
                    ts, hours = int(row[1]), hours_bypassed(int(row[0]), int(row[1]))
            point = (tenant, o[0], o[1], sensor, rule, BYPASS_UNAPPROVED)
            out.append(_Change(point, 0, ts, hours, v.said))
        return out
