"""The alarm -> hidden-danger rules (`telemetry.hazardconfig`, DOMAIN 6). A rule matches the
alarms of its kinds (rule names, levels reached, tenants) and opens a `reported` item (source
monitoring_alarm) with the alarm's tenant, site, sensor and the sensor's location:

- `after_h`: an alarm active longer than that many hours, one item linked to it; `after_h: 0`
  at once, and an alarm that started (event time) within `RECENT_MS` and is cleared already
  too (raised and cleared between two looks: a power cut confirmed late);
- `repeats: {n, within_h}`: a point's (sensor and rule) alarms started n times within within_h
  hours, one item linked to the n of them. Once per run: the point's next alarms within
  within_h of the run's latest (`hazard_repeat_runs`) go on the run and open nothing; one
  started more than within_h after it starts a new run, which opens an item at its n-th.

Once per alarm (the table `hazard_alarm_opened`, so a restart opens nothing twice). A device's
comm-loss alarm opens one item for the device: its sensors' own no-data alarms open none while
it is active; a gateway's offline alarm one for the outage: its devices' and sensors' no-data
alarms none while it is active. An alarm opens one item: the first rule of the list matching it
(in a pass), never one an item already links (`from_alarm`), never a hidden-danger alarm. A pass
opens at most `MAX_OPENED_PER_PASS` items, the rest the next passes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alerts.alarmevent import DEVICE_RULE, HAZARD_RULE
from alerts.gateways import GATEWAY_RULE
from alerts.hazardflow import HazardItem
from alerts.hazards import insert_item
from alerts.kinds import ALARM_KIND_SIDES, HAZARD_OVERDUE, HAZARD_REVIEW_OVERDUE, NO_DATA, kind_name
from telemetry.hazardconfig import HazardFromAlarm
from telemetry.registry import Registry

__all__ = ["MAX_OPENED_PER_PASS", "RECENT_MS", "open_from_alarms"]

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
MAX_OPENED_PER_PASS = 50  # items one pass opens at most; the rest the next passes (a minute)
# how far back (event time) an `after_h: 0` rule takes an alarm cleared already, and a repeats
# rule looks beyond its within_h: an alarm raised and cleared between two looks, a late batch,
# a hub stopped for a while
RECENT_MS = 24 * HOUR_MS
_COLS = "id, tenant, site, device, sensor, rule, side, started_ts, level_name"


@dataclass(frozen=True, slots=True)
class _Alarm:
    id: int
    tenant: str
    site: str
    device: str
    sensor: str
    rule: str
    side: int
    started: int
    level_name: str


def _filters(rule: HazardFromAlarm, tenants: Sequence[str]) -> tuple[str, list[object]] | None:
    """The rule's WHERE clauses over `alarms` (None: it can match nothing)."""
    clauses = ["rule != ?", "side NOT IN (?, ?)"]  # (never a hidden-danger item's own alarm)
    params: list[object] = [HAZARD_RULE, HAZARD_OVERDUE, HAZARD_REVIEW_OVERDUE]
    kinds = rule.alarm_kinds
    if kinds is not None:
        sides = [ALARM_KIND_SIDES[k] for k in kinds if k in ALARM_KIND_SIDES]
        if not sides:
            return None
        clauses.append(f"side IN ({','.join('?' * len(sides))})")
        params += sides
    if rule.rules:
        clauses.append(f"rule IN ({','.join('?' * len(rule.rules))})")
        params += list(rule.rules)
    if rule.levels:  # reached: its level now, or one its journal says it had
        marks = ",".join("?" * len(rule.levels))
        clauses.append(
            f"(level_name IN ({marks}) OR EXISTS (SELECT 1 FROM alarm_events e "
            f"WHERE e.alarm_id = alarms.id AND e.level_name IN ({marks})))"
        )
        params += [*rule.levels, *rule.levels]
    if tenants:
        clauses.append(f"tenant IN ({','.join('?' * len(tenants))})")
        params += list(tenants)
    return " AND ".join(clauses), params


def _rows(con: sqlite3.Connection, sql: str, params: list[object]) -> list[_Alarm]:
    return [
        _Alarm(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), int(r[6]),
               int(r[7]), str(r[8]))
        for r in con.execute(sql, params).fetchall()
    ]  # fmt: skip


def _lasting(
    con: sqlite3.Connection, rule: HazardFromAlarm, now: int, tenants: Sequence[str]
) -> list[_Alarm]:
    """The alarms an `after_h` rule opens an item from now, not opened yet, oldest first:
    active that long; with `after_h` 0, cleared ones started within `RECENT_MS` too."""
    assert rule.after_h is not None
    found = _filters(rule, rule.tenants)
    if found is None:
        return []
    where, params = found
    where += " AND id NOT IN (SELECT alarm_id FROM hazard_alarm_opened)"
    rows = _rows(
        con,
        f"SELECT {_COLS} FROM alarms WHERE state = 'active' AND {where} AND started_ts <= ?",
        [*params, now - round(rule.after_h * HOUR_MS)],
    )
    if rule.after_h == 0 and tenants:  # (by tenant and start: the index alarms_tenant)
        recent = _filters(rule, rule.tenants or tenants)
        assert recent is not None
        where, params = recent
        where += " AND id NOT IN (SELECT alarm_id FROM hazard_alarm_opened)"
        seen = {a.id for a in rows}
        rows += [
            a
            for a in _rows(
                con,
                f"SELECT {_COLS} FROM alarms WHERE state = 'cleared' AND {where} "
                "AND started_ts >= ? AND started_ts <= ?",
                [*params, now - RECENT_MS, now],
            )
            if a.id not in seen
        ]
    return sorted(rows, key=lambda a: a.id)


def _repeated(
    con: sqlite3.Connection,
    rule: HazardFromAlarm,
    now: int,
    tenants: Sequence[str],
    skip: Callable[[], set[int]],
) -> list[list[_Alarm]]:
    """The runs of repeats a `repeats` rule opens an item from now: each the n alarms of a
    point, the n-th last. The runs going on are carried forward (`hazard_repeat_runs`)."""
    assert rule.repeats is not None
    n, within = rule.repeats.n, round(rule.repeats.within_h * HOUR_MS)
    found = _filters(rule, rule.tenants or tenants)
    if found is None or not (rule.tenants or tenants):
        return []
    where, params = found
    alarms = _rows(
        con,
        f"SELECT {_COLS} FROM alarms WHERE {where} AND started_ts >= ? AND started_ts <= ? "
        "ORDER BY started_ts, id",
        [*params, now - within - RECENT_MS, now],
    )
    points: dict[tuple[str, str], list[_Alarm]] = {}
    for a in alarms:
        points.setdefault((a.sensor, a.rule), []).append(a)
    due: list[list[_Alarm]] = []
    for (sensor, alarm_rule), seq in points.items():
        row = con.execute(
            "SELECT last_ts FROM hazard_repeat_runs WHERE sensor = ? AND rule = ?",
            (sensor, alarm_rule),
        ).fetchone()
        if row is None and len(seq) < n:
            continue  # (no run to carry on, too few to open one: the items' links not read)
        last = None if row is None else int(row[0])
        taken = skip()
        pending: list[_Alarm] = []
        for a in (x for x in seq if x.id not in taken):
            if last is not None and a.started <= last + within:  # the run goes on
                if a.started > last:
                    last = a.started
                    con.execute(
                        "UPDATE hazard_repeat_runs SET last_ts = ? WHERE sensor = ? AND rule = ?",
                        (last, sensor, alarm_rule),
                    )
                continue
            pending = [p for p in pending if a.started - p.started <= within] + [a]
            if len(pending) >= n:
                due.append(pending)
                break  # (opened, the run is recorded: the next pass carries it on)
    return due


def _taken(con: sqlite3.Connection) -> Callable[[], set[int]]:
    """The ids of the alarms an item links or a rule opened one from, read at the first ask of
    a pass (one scan of the items' links, not one per alarm due), then kept for the pass."""
    found: list[set[int]] = []

    def taken() -> set[int]:
        if not found:
            rows = con.execute(
                "SELECT DISTINCT j.value FROM hazards h, json_each(h.alarm_ids) j"
            ).fetchall()
            opened = con.execute("SELECT alarm_id FROM hazard_alarm_opened").fetchall()
            found.append({int(r[0]) for r in (*rows, *opened)})
        return found[0]

    return taken


def _down(con: sqlite3.Connection, rule: str) -> set[tuple[str, str, str]]:
    return {
        (str(t), str(s), str(d))
        for t, s, d in con.execute(
            "SELECT tenant, site, device FROM alarms WHERE state = 'active' AND rule = ? "
            "AND side = ?",
            (rule, NO_DATA),
        ).fetchall()
    }


def _said(rule: HazardFromAlarm, alarms: Sequence[_Alarm], location: str) -> str:
    a = alarms[-1]
    kind = kind_name(a.side)
    at = f"{a.sensor}{f' ({location})' if location else ''}"
    if rule.repeats is not None:
        n, h = rule.repeats.n, f"{rule.repeats.within_h:g}"
        ids = ", ".join(str(x.id) for x in alarms)
        return (
            f"{kind} {n} 次 / {h} h 内重复: {at}, alarms {ids} "
            f"(the hub's alarm -> hazard rule: {n} alarms within {h} h)"
        )
    if rule.after_h == 0:
        return (
            f"{kind} ({a.level_name}): {at}, alarm {a.id} "
            f"(the hub's alarm -> hazard rule: {kind} at once)"
        )
    return (
        f"{kind} 持续超过 {rule.after_h:g} h: {at}, alarm {a.id} "
        f"(the hub's alarm -> hazard rule: {kind} longer than {rule.after_h:g} h)"
    )


def open_from_alarms(con: sqlite3.Connection, registry: Registry, now: int) -> list[HazardItem]:
    """Open the items the configured rules call for at `now` (the hub's clock), in the caller's
    transaction; the items opened."""
    opened: list[HazardItem] = []
    rules = registry.config.hazards.from_alarms
    if not rules:
        return opened
    devices_down = _down(con, DEVICE_RULE)
    gateways_down = _down(con, GATEWAY_RULE)
    tenants = sorted(registry.tenants)
    left = 0
    taken = _taken(con)

    def behind(a: _Alarm) -> bool:
        """A no-data alarm whose device's or gateway's own opens the item."""
        if a.side != NO_DATA or a.rule == GATEWAY_RULE:
            return False
        if a.rule != DEVICE_RULE and (a.tenant, a.site, a.device) in devices_down:
            return True
        dev = registry.devices.get((a.tenant, a.site, a.device))
        return dev is not None and (a.tenant, a.site, dev.spec.gateway) in gateways_down

    for rule in rules:
        if rule.repeats is not None:
            groups = _repeated(con, rule, now, tenants, taken)
        else:
            lasting = _lasting(con, rule, now, tenants)
            skip = taken() if lasting else set()
            groups = [[a] for a in lasting if a.id not in skip]
        for group in groups:
            a = group[-1]
            if behind(a):
                continue
            if len(opened) >= MAX_OPENED_PER_PASS:
                left += 1
                continue
            info = registry.sensor_of(a.tenant, a.sensor, a.site, a.device)
            location = info.location if info is not None else ""
            item = HazardItem(
                0, a.tenant, a.site, "monitoring_alarm", rule.category, rule.grade,
                _said(rule, group, location), location, tuple(x.id for x in group), (a.sensor,),
                a.started, "hazardhub",
                "hazardhub", now, updated_at=now,
            )  # fmt: skip
            made = insert_item(con, item, "hub")
            con.executemany(
                "INSERT INTO hazard_alarm_opened (alarm_id, hazard_id) VALUES (?, ?)",
                [(x.id, made.id) for x in group],
            )
            taken().update(x.id for x in group)
            if rule.repeats is not None:
                con.execute(
                    "INSERT OR REPLACE INTO hazard_repeat_runs (sensor, rule, hazard_id, last_ts) "
                    "VALUES (?, ?, ?, ?)",
                    (a.sensor, a.rule, made.id, a.started),
                )
            log.info(
                "hazard %d opened from alarm(s) %s (%s of %s)",
                made.id, ", ".join(str(x.id) for x in group), kind_name(a.side), a.sensor,
            )  # fmt: skip
            opened.append(made)
    if left:
        log.warning(
            "alarm -> hazard rules: %d items opened this pass (the most), %d more next pass",
            len(opened), left,
        )  # fmt: skip
    return opened
