"""The alarm -> hidden-danger rules (`telemetry.hazardconfig`, DOMAIN 6): an alarm of a rule's
kinds active longer than its `after_h` hours opens a `reported` item (source monitoring_alarm)
linked to it, with its tenant, site, sensor and the sensor's location; once per alarm (the table
`hazard_alarm_opened`, so a restart opens nothing twice). A device's comm-loss alarm opens one
item for the device: its sensors' own no-data alarms open none while it is active; a gateway's
offline alarm one for the outage: its devices' and sensors' no-data alarms none while it is
active. An alarm opens one item: the first rule of the list matching it (in a pass; a rule of
a shorter `after_h` matches it first), never one an item already links (`from_alarm`). A pass
opens at most `MAX_OPENED_PER_PASS` items, the rest the next passes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from alerts.alarmevent import DEVICE_RULE
from alerts.gateways import GATEWAY_RULE
from alerts.hazardflow import HazardItem
from alerts.hazards import insert_item
from alerts.kinds import ALARM_KIND_SIDES, NO_DATA, kind_name
from telemetry.hazardconfig import HazardFromAlarm
from telemetry.registry import Registry

__all__ = ["MAX_OPENED_PER_PASS", "open_from_alarms"]

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
MAX_OPENED_PER_PASS = 50  # items one pass opens at most; the rest the next passes (a minute)


def _matching(
    con: sqlite3.Connection, rule: HazardFromAlarm, now: int, linked: Callable[[], set[int]]
) -> list[tuple[int, str, str, str, str, str, int, int]]:
    """The active alarms the rule opens an item from now: (id, tenant, site, device, sensor,
    rule, side, started_ts), oldest first. `linked`: the alarms items link already (one opened
    by hand with from_alarm: not again), asked only when an alarm is due."""
    sides = [ALARM_KIND_SIDES[k] for k in rule.kinds if k in ALARM_KIND_SIDES]
    if not sides:
        return []
    params: list[object] = [*sides, now - round(rule.after_h * HOUR_MS)]
    sql = (
        "SELECT id, tenant, site, device, sensor, rule, side, started_ts FROM alarms "
        f"WHERE state = 'active' AND side IN ({','.join('?' * len(sides))}) "
        "AND started_ts <= ? AND id NOT IN (SELECT alarm_id FROM hazard_alarm_opened)"
    )
    if rule.tenants:
        sql += f" AND tenant IN ({','.join('?' * len(rule.tenants))})"
        params += list(rule.tenants)
    rows = con.execute(sql + " ORDER BY id", params).fetchall()
    if not rows:
        return []
    skip = linked()
    return [
        (int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), int(r[6]), int(r[7]))
        for r in rows
        if int(r[0]) not in skip
    ]


def _linked_once(con: sqlite3.Connection) -> Callable[[], set[int]]:
    """The ids of the alarms any item links, read at the first ask of a pass (one scan of the
    items' links, not one per alarm due), then kept for the pass."""
    found: list[set[int]] = []

    def linked() -> set[int]:
        if not found:
            rows = con.execute(
                "SELECT DISTINCT j.value FROM hazards h, json_each(h.alarm_ids) j"
            ).fetchall()
            found.append({int(r[0]) for r in rows})
        return found[0]

    return linked


def open_from_alarms(con: sqlite3.Connection, registry: Registry, now: int) -> list[HazardItem]:
    """Open the items the configured rules call for at `now` (the hub's clock), in the caller's
    transaction; the items opened."""
    opened: list[HazardItem] = []
    rules = registry.config.hazards.from_alarms
    if not rules:
        return opened
    devices_down = {
        (str(t), str(s), str(d))
        for t, s, d in con.execute(
            "SELECT tenant, site, device FROM alarms WHERE state = 'active' AND rule = ? "
            "AND side = ?",
            (DEVICE_RULE, NO_DATA),
        ).fetchall()
    }
    gateways_down = {
        (str(t), str(s), str(g))
        for t, s, g in con.execute(
            "SELECT tenant, site, device FROM alarms WHERE state = 'active' AND rule = ? "
            "AND side = ?",
            (GATEWAY_RULE, NO_DATA),
        ).fetchall()
    }
    left = 0
    linked = _linked_once(con)
    for rule in rules:
        for alarm_id, tenant, site, device, sensor, alarm_rule, side, started in _matching(
            con, rule, now, linked
        ):
            own = alarm_rule != DEVICE_RULE and side == NO_DATA
            if own and (tenant, site, device) in devices_down:
                continue  # (the device's own alarm opens its item)
            dev = registry.devices.get((tenant, site, device))
            behind = dev is not None and (tenant, site, dev.spec.gateway) in gateways_down
            if side == NO_DATA and alarm_rule != GATEWAY_RULE and behind:
                continue  # (its gateway's offline alarm opens the outage's one item)
            if len(opened) >= MAX_OPENED_PER_PASS:
                left += 1
                continue
            info = registry.sensor_of(tenant, sensor, site, device)
            location = info.location if info is not None else ""
            kind = kind_name(side)
            description = (
                f"{kind} 持续超过 {rule.after_h:g} h: {sensor}"
                f"{f' ({location})' if location else ''}, alarm {alarm_id} "
                f"(the hub's alarm -> hazard rule: {kind} longer than {rule.after_h:g} h)"
            )
            item = HazardItem(
                0, tenant, site, "monitoring_alarm", rule.category, rule.grade, description,
                location, (alarm_id,), (sensor,), started, "hazardhub", "hazardhub", now,
                updated_at=now,
            )  # fmt: skip
            made = insert_item(con, item, "hub")
            con.execute(
                "INSERT INTO hazard_alarm_opened (alarm_id, hazard_id) VALUES (?, ?)",
                (alarm_id, made.id),
            )
            log.info("hazard %d opened from alarm %d (%s of %s)", made.id, alarm_id, kind, sensor)
            opened.append(made)
    if left:
        log.warning(
            "alarm -> hazard rules: %d items opened this pass (the most), %d more next pass",
            len(opened), left,
        )  # fmt: skip
    return opened
