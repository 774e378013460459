"""Resolve a `HubConfig` with its profiles and rule packs into the compiled registry.

Every sensor gets a dense int32 index, the index the columnar batches and the alert tables use.
A vehicle contributes one sensor, ``{vehicle}.speed``, judged by its speed rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from telemetry.config import (
    DeviceProfile,
    HubConfig,
    LevelSpec,
    PointSpec,
    RulePack,
    RuleSpec,
)
from telemetry.errors import ConfigError
from telemetry.registrychecks import (
    check_hazard_rules,
    check_names,
    check_reachable,
    check_sensors,
    check_terminals,
)
from telemetry.registrytypes import DeviceInfo, Registry, SensorInfo, VehicleInfo
from telemetry.unitchecks import sensor_unit
from telemetry.yamlkeys import load_once

__all__ = [
    "DEFAULT_VEHICLE_RULES",
    "DeviceInfo",
    "Registry",
    "SensorInfo",
    "VehicleInfo",
    "build_registry",
    "parse_document",
    "safe_yaml",
]

M = TypeVar("M", bound=BaseModel)


def safe_yaml(text: str) -> Any:
    """YAML to plain data with a safe loader (no Python objects); raises yaml.YAMLError, also
    for a mapping key given twice (`telemetry.yamlkeys`)."""
    return load_once(text)


_ERRORS_SAID = 20  # the configuration errors said at once

DEFAULT_VEHICLE_RULES: Mapping[str, str] = {
    "hazmat": "road-transport.hazmat-speed",
    "coach": "road-transport.coach-speed",
    "charter": "road-transport.charter-speed",
}


def _describe(exc: ValidationError, source: str, prefix: str = "") -> ConfigError:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"]))
        lines.append(f"{source}: {path or '<root>'}: {err['msg']}")
    return ConfigError("\n".join(lines))


def parse_document(text: str, model: type[M], source: str) -> M:
    """Parse YAML text into `model`; errors name the source, the path and the problem."""
    try:
        data: Any = safe_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, source) from exc


def _levels_for(
    rule: str | None, inline: tuple[LevelSpec, ...], packs: Mapping[str, RulePack], where: str
) -> tuple[str, tuple[LevelSpec, ...]]:
    found = _rule_for(rule, inline, packs, where)
    return found[0], found[1]


def _rule_for(
    rule: str | None, inline: tuple[LevelSpec, ...], packs: Mapping[str, RulePack], where: str
) -> tuple[str, tuple[LevelSpec, ...], float | None]:
    """(rule reference, levels, no-data timeout of the rule)."""
    if inline:
        return "inline", inline, None
    if rule is None:
        return "", (), None
    pack_name, _, rule_name = rule.partition(".")
    pack = packs.get(pack_name)
    if pack is None:
        raise ConfigError(f"{where}: rule {rule!r}: no rule pack named {pack_name!r}")
    spec = pack.rules.get(rule_name)
    if spec is None:
        raise ConfigError(f"{where}: rule {rule!r}: pack {pack_name!r} has no rule {rule_name!r}")
    return rule, spec.levels, spec.no_data_s


def _pack_rule(rule: str | None, packs: Mapping[str, RulePack]) -> RuleSpec | None:
    """The rule pack entry `rule` names (already checked by `_rule_for`), if any."""
    if rule is None:
        return None
    pack_name, _, rule_name = rule.partition(".")
    pack = packs.get(pack_name)
    return None if pack is None else pack.rules.get(rule_name)


def build_registry(
    config: HubConfig,
    profiles: Iterable[DeviceProfile] = (),
    packs: Iterable[RulePack] = (),
    source: str = "config",
) -> Registry:
    """Check cross-references (profiles, points, rules, unique ids) and index every sensor."""
    profile_map: dict[str, DeviceProfile] = {}
    for prof in (*profiles, *config.device_profiles):
        profile_map[prof.name] = prof
    pack_map: dict[str, RulePack] = {}
    for pack in (*packs, *config.rule_packs):
        pack_map[pack.name] = pack

    sensors: list[SensorInfo] = []
    devices: dict[tuple[str, str, str], DeviceInfo] = {}
    vehicles: dict[tuple[str, str], VehicleInfo] = {}
    by_id: dict[str, SensorInfo] = {}
    by_key: dict[tuple[str, str, str, str], int] = {}
    tenant_ids: set[str] = set()
    # the errors of devices and sensors, all said at once (not one per `hazardhub check`), and
    # the sensors they left out (a group naming one is not judged again)
    errors: list[str] = []
    failed: set[str] = set()

    def add(info: SensorInfo, where: str) -> None:
        if info.id in by_id:
            raise ConfigError(f"{where}: sensor id {info.id!r} is used twice")
        sensors.append(info)
        by_id[info.id] = info
        by_key[(info.tenant, info.site, info.device, info.key)] = info.index

    for ti, tenant in enumerate(config.tenants):
        if tenant.id in tenant_ids:
            raise ConfigError(f"{source}: tenants.{ti}.id: tenant {tenant.id!r} is defined twice")
        tenant_ids.add(tenant.id)
        site_ids: set[str] = set()
        for si, site in enumerate(tenant.sites):
            if site.id in site_ids:
                raise ConfigError(f"{source}: tenants.{ti}.sites.{si}.id: duplicate {site.id!r}")
            site_ids.add(site.id)
            for di, dev in enumerate(site.devices):
                where = f"{source}: tenants.{ti}.sites.{si}.devices.{di}"
                try:
                    if (tenant.id, site.id, dev.id) in devices:
                        raise ConfigError(
                            f"{where}.id: device {dev.id!r} is defined twice in the site"
                        )
                    if dev.gateway in config.jt808_gateways:
                        raise ConfigError(
                            f"{where}.gateway: {dev.gateway!r} names a JT/T 808 gateway "
                            "(jt808_gateways); give the device's Modbus gateway another name"
                        )
                    found = profile_map.get(dev.profile)
                    if found is None:
                        raise ConfigError(
                            f"{where}.profile: device {dev.id!r}: "
                            f"no device profile named {dev.profile!r}"
                        )
                except ConfigError as exc:  # said with the others, at the end
                    errors.append(str(exc))
                    failed.update(sen.id for sen in dev.sensors)
                    continue
                prof = found
                points = {p.name: p for p in prof.points}
                used: list[PointSpec] = []
                idx: list[int] = []
                for ki, sen in enumerate(dev.sensors):
                    swhere = f"{where}.sensors.{ki}"
                    try:
                        point = points.get(sen.point)
                        if point is None:
                            raise ConfigError(
                                f"{swhere}.point: device {dev.id!r}, sensor {sen.id!r}: "
                                f"profile {prof.name!r} has no point {sen.point!r}"
                            )
                        if any(p.name == point.name for p in used):
                            raise ConfigError(f"{swhere}.point: point {sen.point!r} used twice")
                        rule, levels, no_data_s = _rule_for(
                            sen.rule, sen.levels, pack_map, f"{swhere}.rule"
                        )
                        packed = None if sen.levels else _pack_rule(sen.rule, pack_map)
                        if packed is not None and packed.kinds and sen.kind not in packed.kinds:
                            raise ConfigError(
                                f"{swhere}.rule: rule {sen.rule!r} is for sensors of kind "
                                f"{', '.join(packed.kinds)}, not {sen.kind!r} "
                                f"(sensor {sen.id!r}): its levels would be wrong for what the "
                                "point measures; pick a rule for this kind or give the sensor "
                                "its own levels"
                            )
                        unit = sensor_unit(
                            sensor=sen.id,
                            unit=sen.unit,
                            point=point,
                            profile=prof.name,
                            rule=sen.rule,
                            rule_units=packed.units if packed is not None else (),
                            where=swhere,
                        )
                        check_reachable(levels, point, sen.id, swhere)
                        rate = sen.rate or (packed.rate if packed else None)
                        early = sen.early_warning or (packed.early_warning if packed else None)
                        frozen = sen.frozen or (packed.frozen if packed else None)
                        maintenance = sen.maintenance or (packed.maintenance if packed else None)
                        calibration = sen.calibration_due or (
                            packed.calibration_due if packed else None
                        )
                        lock_test = None
                        if sen.verify is not None:
                            lock_test = sen.verify.lock_test or (
                                packed.lock_test if packed else None
                            )
                        if early is not None and all(lv.above is None for lv in levels):
                            raise ConfigError(f"{swhere}.early_warning: needs a level above")
                        info = SensorInfo(
                            index=len(sensors),
                            id=sen.id,
                            tenant=tenant.id,
                            site=site.id,
                            device=dev.id,
                            key=point.name,
                            kind=sen.kind,
                            unit=unit,
                            location=sen.location,
                            tag=sen.tag,
                            rule=rule,
                            levels=levels,
                            no_data_s=sen.no_data_s if sen.no_data_s is not None else no_data_s,
                            verify=sen.verify,
                            rate=rate,
                            early_warning=early,
                            suppress_when=sen.suppress_when,
                            frozen=frozen,
                            maintenance=maintenance,
                            calibration_due=calibration,
                            lock_test=lock_test,
                        )
                        add(info, swhere)
                    except ConfigError as exc:
                        errors.append(str(exc))
                        failed.add(sen.id)
                        continue
                    used.append(point)
                    idx.append(info.index)
                devices[(tenant.id, site.id, dev.id)] = DeviceInfo(
                    tenant.id, site.id, dev, prof, tuple(used), tuple(idx)
                )
            for gi, group in enumerate(site.groups):
                gwhere = f"{source}: tenants.{ti}.sites.{si}.groups.{gi}"
                if failed.intersection(group.sensors):
                    continue  # said already: its sensor's own error
                members = []
                for sid in group.sensors:
                    member = by_id.get(sid)
                    if member is None or (member.tenant, member.site) != (tenant.id, site.id):
                        raise ConfigError(f"{gwhere}.sensors: no sensor {sid!r} in the site")
                    if sum(lv.above is not None for lv in member.levels) < group.at_level:
                        raise ConfigError(
                            f"{gwhere}.sensors: {sid!r} has no level {group.at_level} above"
                        )
                    if any(member.index in g.members for g in sensors):
                        raise ConfigError(f"{gwhere}.sensors: {sid!r} is in two groups")
                    members.append(member.index)
                level = LevelSpec(
                    name=group.name,
                    tier=group.tier,
                    above=group.k,
                    recover=group.k,
                    action=group.action,
                    note=f"{group.k} of {len(members)} at level {group.at_level}"
                    + (", a failed member counting as at it" if group.count_failed else ""),
                )
                # its members' kind when they share one: a subscription to flammable gas hears
                # the area's alarm (helper-146: it was "other")
                kinds = {sensors[m].kind for m in members}
                info = SensorInfo(
                    index=len(sensors),
                    id=group.id,
                    tenant=tenant.id,
                    site=site.id,
                    device="",
                    key=f"group:{group.id}",
                    kind=kinds.pop() if len(kinds) == 1 else "other",
                    unit="sensors",
                    location=group.location,
                    tag="vote",
                    rule="vote",
                    levels=(level,),
                    members=tuple(members),
                    vote_level=group.at_level,
                    count_failed=group.count_failed,
                )
                add(info, gwhere)
        for vi, veh in enumerate(tenant.vehicles):
            where = f"{source}: tenants.{ti}.vehicles.{vi}"
            try:
                if (tenant.id, veh.id) in vehicles:
                    raise ConfigError(f"{where}.id: vehicle {veh.id!r} is defined twice")
                rule_ref = veh.rule or DEFAULT_VEHICLE_RULES[veh.vehicle_class]
                if rule_ref == "none":  # the fleet's overspeed alone judges the speed
                    rule, levels, packed = "", (), None
                else:
                    rule, levels = _levels_for(rule_ref, (), pack_map, f"{where}.rule")
                    packed = _pack_rule(rule_ref, pack_map)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            info = SensorInfo(
                index=len(sensors),
                id=f"{veh.id}.speed",
                tenant=tenant.id,
                site="vehicles",
                device=veh.id,
                key="speed",
                kind="speed",
                unit="km/h",
                location=veh.plate,
                tag=veh.vehicle_class,
                rule=rule,
                levels=levels,
                rate=packed.rate if packed else None,
                early_warning=packed.early_warning if packed else None,
            )
            add(info, where)
            vehicles[(tenant.id, veh.id)] = VehicleInfo(tenant.id, veh, info.index)

    if errors:
        more = f"\n... and {len(errors) - _ERRORS_SAID} more" if len(errors) > _ERRORS_SAID else ""
        raise ConfigError("\n".join(errors[:_ERRORS_SAID]) + more)
    check_sensors(sensors, by_id, config, source)

    registry = Registry(
        config,
        tuple(sensors),
        devices,
        vehicles,
        by_id,
        by_key,
        packs=pack_map,
    )
    check_names(registry, source)
    check_hazard_rules(registry, source)
    check_terminals(config, source)
    return registry
