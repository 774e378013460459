"""Resolve a `HubConfig` with its profiles and rule packs into the compiled registry.

Every sensor gets a dense int32 index, the index the columnar batches and the alert tables use.
A vehicle contributes one sensor, ``{vehicle}.speed``, judged by its speed rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from telemetry.config import (
    DeviceProfile,
    DeviceSpec,
    HubConfig,
    LevelSpec,
    PointSpec,
    RulePack,
    SensorKind,
    VehicleSpec,
)
from telemetry.errors import ConfigError

__all__ = [
    "DEFAULT_VEHICLE_RULES",
    "DeviceInfo",
    "Registry",
    "SensorInfo",
    "VehicleInfo",
    "build_registry",
    "parse_document",
]

M = TypeVar("M", bound=BaseModel)

DEFAULT_VEHICLE_RULES: Mapping[str, str] = {
    "hazmat": "road-transport.hazmat-speed",
    "coach": "road-transport.coach-speed",
    "charter": "road-transport.charter-speed",
}


@dataclass(frozen=True, slots=True)
class SensorInfo:
    index: int
    id: str
    tenant: str
    site: str  # "vehicles" for a vehicle's speed sensor
    device: str  # the vehicle id for a vehicle's speed sensor
    key: str  # the key in the telemetry payload (the profile point, or "speed")
    kind: SensorKind
    unit: str
    location: str
    tag: str
    rule: str  # "pack.rule", "inline", or "" when the sensor has no levels
    levels: tuple[LevelSpec, ...]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    tenant: str
    site: str
    spec: DeviceSpec
    profile: DeviceProfile
    points: tuple[PointSpec, ...]  # the profile points that sensors use, in sensor order
    sensors: tuple[int, ...]  # sensor indices, same order as points


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    tenant: str
    spec: VehicleSpec
    speed_sensor: int


@dataclass(frozen=True, slots=True)
class Registry:
    config: HubConfig
    sensors: tuple[SensorInfo, ...]
    devices: Mapping[tuple[str, str, str], DeviceInfo]  # (tenant, site, device)
    vehicles: Mapping[tuple[str, str], VehicleInfo]  # (tenant, vehicle)
    _by_id: Mapping[str, SensorInfo] = field(repr=False)
    _by_key: Mapping[tuple[str, str, str, str], int] = field(repr=False)

    def sensor(self, sensor_id: str) -> SensorInfo | None:
        return self._by_id.get(sensor_id)

    def sensor_index(self, tenant: str, site: str, device: str, key: str) -> int | None:
        return self._by_key.get((tenant, site, device, key))

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.config.tenants)


def _describe(exc: ValidationError, source: str, prefix: str = "") -> ConfigError:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"]))
        lines.append(f"{source}: {path or '<root>'}: {err['msg']}")
    return ConfigError("\n".join(lines))


def parse_document(text: str, model: type[M], source: str) -> M:
    """Parse YAML text into `model`; errors name the source, the path and the problem."""
    try:
        data: Any = yaml.safe_load(text)
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
    if inline:
        return "inline", inline
    if rule is None:
        return "", ()
    pack_name, _, rule_name = rule.partition(".")
    pack = packs.get(pack_name)
    if pack is None:
        raise ConfigError(f"{where}: rule {rule!r}: no rule pack named {pack_name!r}")
    spec = pack.rules.get(rule_name)
    if spec is None:
        raise ConfigError(f"{where}: rule {rule!r}: pack {pack_name!r} has no rule {rule_name!r}")
    return rule, spec.levels


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
                if (tenant.id, site.id, dev.id) in devices:
                    raise ConfigError(f"{where}.id: device {dev.id!r} is defined twice in the site")
                found = profile_map.get(dev.profile)
                if found is None:
                    raise ConfigError(
                        f"{where}.profile: device {dev.id!r}: "
                        f"no device profile named {dev.profile!r}"
                    )
                prof = found
                points = {p.name: p for p in prof.points}
                used: list[PointSpec] = []
                idx: list[int] = []
                for ki, sen in enumerate(dev.sensors):
                    swhere = f"{where}.sensors.{ki}"
                    point = points.get(sen.point)
                    if point is None:
                        raise ConfigError(
                            f"{swhere}.point: device {dev.id!r}, sensor {sen.id!r}: "
                            f"profile {prof.name!r} has no point {sen.point!r}"
                        )
                    if any(p.name == point.name for p in used):
                        raise ConfigError(f"{swhere}.point: point {sen.point!r} used twice")
                    rule, levels = _levels_for(sen.rule, sen.levels, pack_map, f"{swhere}.rule")
                    info = SensorInfo(
                        index=len(sensors),
                        id=sen.id,
                        tenant=tenant.id,
                        site=site.id,
                        device=dev.id,
                        key=point.name,
                        kind=sen.kind,
                        unit=sen.unit or point.unit,
                        location=sen.location,
                        tag=sen.tag,
                        rule=rule,
                        levels=levels,
                    )
                    add(info, swhere)
                    used.append(point)
                    idx.append(info.index)
                devices[(tenant.id, site.id, dev.id)] = DeviceInfo(
                    tenant.id, site.id, dev, prof, tuple(used), tuple(idx)
                )
        for vi, veh in enumerate(tenant.vehicles):
            where = f"{source}: tenants.{ti}.vehicles.{vi}"
            if (tenant.id, veh.id) in vehicles:
                raise ConfigError(f"{where}.id: vehicle {veh.id!r} is defined twice")
            rule_ref = veh.rule or DEFAULT_VEHICLE_RULES[veh.vehicle_class]
            rule, levels = _levels_for(rule_ref, (), pack_map, f"{where}.rule")
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
            )
            add(info, where)
            vehicles[(tenant.id, veh.id)] = VehicleInfo(tenant.id, veh, info.index)

    for ki, key in enumerate(config.api_keys):
        unknown = [t for t in key.tenants if t not in tenant_ids]
        if unknown:
            raise ConfigError(f"{source}: api_keys.{ki}.tenants: unknown tenant(s) {unknown}")

    return Registry(config, tuple(sensors), devices, vehicles, by_id, by_key)
