"""An alarm as the API shows it (`AlarmPublic`): a state-database record and its journal to
JSON, with the configured names of its tenant, site and device, its unit, its peak."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.kinds import alarm_value_unit
from alerts.statedb import AlarmEventRow, AlarmRow
from alerts.table import TIER_RANK, kind_name
from api.models import AlarmPublic
from telemetry.registry import Registry, SensorInfo

__all__ = ["Names", "alarm_json", "alarm_public", "names_of"]


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


# a tenant's and a site's names as configured, by id (a tenant's: `(tenant, None)`)
Names = Mapping[tuple[str, str | None], str]


def names_of(registry: Registry) -> Names:
    """The configured names of every tenant and site (ids without one are left out)."""
    found: dict[tuple[str, str | None], str] = {}
    for t in registry.config.tenants:
        if t.name:
            found[(t.id, None)] = t.name
        for site in t.sites:
            if site.name:
                found[(t.id, site.id)] = site.name
    return found


def _device_name(registry: Registry, row: Mapping[str, Any]) -> str:
    """The alarm's device by the name the configuration gives it: a device's `name`, a
    vehicle's plate; '' when it has none (a gateway has no name in the configuration)."""
    tenant, site, device = row["tenant"], row["site"], row["device"]
    if str(row["sensor"]).startswith("gateway:"):  # its device column is the gateway's id
        return ""
    found = registry.devices.get((tenant, site, device))
    if found is not None:
        return found.spec.name
    vehicle = registry.vehicles.get((tenant, device)) if site == "vehicles" else None
    return vehicle.spec.plate if vehicle is not None else ""


def _sensor_kind(info: SensorInfo | None, sensor: str) -> str:
    """What the alarm's point measures: the sensor's kind; `device` and `gateway` for the
    alarms of a device and of a gateway (as a notification's `sensor_kind`)."""
    if info is not None:
        return str(info.kind)
    if sensor.startswith("gateway:"):
        return "gateway"
    return "device" if sensor.startswith("device:") else ""


def _peak_tier(tier: str, events: Sequence[Mapping[str, Any]]) -> str:
    """The highest tier of the alarm and its journal."""
    tiers = [tier, *(str(e["tier"]) for e in events)]
    return max(tiers, key=lambda t: TIER_RANK.get(t, 0))


_REACHING = frozenset(["raised", "escalated"])


def _peak(level: int, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The peak of the alarm: the level name, value and event time of the first raise or
    escalation that reached `level` (its `peak_level`); null when the journal has none."""
    for e in events:
        if e["kind"] in _REACHING and e["level"] == level:
            return {
                "peak_level_name": e["level_name"],
                "peak_value": _finite(e["value"]),
                "peak_ts": e["ts"],
            }
    return {"peak_level_name": None, "peak_value": None, "peak_ts": None}


def _event_json(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": e["id"],
        "kind": e["kind"],
        "ts": e["ts"],
        "arrival": e["arrival"],
        "level": e["level"],
        "level_name": e["level_name"],
        "tier": e["tier"],
        "value": _finite(e["value"]),
        "actor": e["actor"],
        "comment": e["comment"],
        "isa_state": e["isa_state"],
    }


def alarm_json(
    row: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    registry: Registry,
    names: Names | None = None,
) -> dict[str, Any]:
    """The alarm (a state-database record: column -> value) as `AlarmPublic` reads in JSON. The
    list route serialises these straight away, without a model per alarm (a fifth of the time);
    `alarm_public` validates the same dictionary, so the two cannot drift apart. `registry`
    gives the sensor's unit and location (a vehicle's plate) as configured now, and the
    tenant's and site's names (`names`, from the registry when not given)."""
    side = kind_name(row["side"])
    info = registry.sensor_of(row["tenant"], row["sensor"], row["site"], row["device"])
    if names is None:
        names = names_of(registry)
    return {
        "id": row["id"],
        "tenant": row["tenant"],
        # a monitoring centre knows an enterprise by its name, not by its id or sensors
        "tenant_name": names.get((row["tenant"], None), ""),
        "site": row["site"],
        "site_name": names.get((row["tenant"], row["site"]), ""),
        "device": row["device"],
        "sensor": row["sensor"],
        "rule": row["rule"],
        "side": side,
        "location": info.location if info is not None else "",
        # the registry's names beside the ids: an operator knows 1301 回风巷 T1, not ch4-t1
        "device_name": _device_name(registry, row),
        "tag": info.tag if info is not None else "",
        "sensor_kind": _sensor_kind(info, row["sensor"]),
        "state": row["state"],
        "isa_state": row["isa_state"],
        "acked": bool(row["acked"]),
        "centre_acked": bool(row["centre_acked"]),
        "shelved_until": row["shelved_until"],
        "suppressed": bool(row["suppressed"]),
        "out_of_service": bool(row["out_of_service"]),
        "disposal": row["disposal"],
        "disposal_due": row["disposal_due"],
        "overdue": bool(row["overdue"]),
        "level": row["level"],
        "level_name": row["level_name"],
        "tier": row["tier"],
        "action": row["action"],
        "peak_level": row["peak_level"],
        # the highest tier it reached: a red alarm back at yellow is still one of the red ones
        "peak_tier": _peak_tier(row["tier"], events),
        # the worst it was: what and when, not the value at its last change (the clear's)
        **_peak(row["peak_level"], events),
        "started_ts": row["started_ts"],
        "ended_ts": row["ended_ts"],
        "raised_at": row["raised_at"],
        "cleared_at": row["cleared_at"],
        "value": _finite(row["value"]),
        "value_unit": alarm_value_unit(registry, info, side),
        "events": [_event_json(e) for e in events],
    }


def _record(row: AlarmRow | AlarmEventRow) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def alarm_public(row: AlarmRow, events: list[AlarmEventRow], registry: Registry) -> AlarmPublic:
    return AlarmPublic.model_validate(
        alarm_json(_record(row), [_record(e) for e in events], registry)
    )
