"""Resolve a `HubConfig` with its profiles and rule packs into the compiled registry.

Every sensor gets a dense int32 index, the index the columnar batches and the alert tables use.
A vehicle contributes one sensor, ``{vehicle}.speed``, judged by its speed rule.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from telemetry.config import (
    DeviceProfile,
    DeviceSpec,
    EarlyWarningSpec,
    FrozenSpec,
    HubConfig,
    LevelSpec,
    MaintenanceSpec,
    PointSpec,
    RateSpec,
    RulePack,
    RuleSpec,
    SensorKind,
    SuppressSpec,
    VehicleSpec,
    VerifySpec,
)
from telemetry.errors import ConfigError
from telemetry.notifyconfig import MATCH_SENSOR_KINDS

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
# libyaml's safe loader when PyYAML has it (several times faster on a large configuration)
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_yaml(text: str) -> Any:
    """YAML to plain data with a safe loader (no Python objects); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - SafeLoader or CSafeLoader


_ERRORS_SAID = 20  # the configuration errors said at once

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
    no_data_s: float | None = None  # the sensor's own timeout, else its rule's
    verify: VerifySpec | None = None  # protective action checked by a feedback sensor
    members: tuple[int, ...] = ()  # a voting group: the member sensors it counts
    vote_level: int = 0  # a voting group: the members' level (above) that counts
    # a voting group: a member in sensor fault or without data counts as at the level
    count_failed: bool = False
    rate: RateSpec | None = None  # rate of rise: the sensor's own, else its rule's
    early_warning: EarlyWarningSpec | None = None  # the sensor's own, else its rule's
    suppress_when: tuple[SuppressSpec, ...] = ()  # suppression by design
    frozen: FrozenSpec | None = None  # frozen-value check: the sensor's own, else its rule's
    # the limit on calibration and manual time: the sensor's own, else its rule's
    maintenance: MaintenanceSpec | None = None


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
    # per tenant, the names its subscriptions and silences may use (`unknown_names`), made once:
    # checking each of many objects made them again from every sensor of the hub
    _known: dict[str, dict[str, frozenset[str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # the rule packs the sensors could name: the shipped and site folders', then the
    # configuration's own (`rule_packs:`, which win over a folder's of the same name)
    packs: Mapping[str, RulePack] = field(default_factory=dict, repr=False, compare=False)
    # (tenant, site, device) -> name, made at the first `names` (site: device "", tenant: both)
    _names: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False, compare=False)

    def sensor(self, sensor_id: str) -> SensorInfo | None:
        return self._by_id.get(sensor_id)

    def sensor_of(self, tenant: str, sensor_id: str, site: str, device: str) -> SensorInfo | None:
        """The sensor of an alarm (its tenant, site and device as recorded), None when the id is
        now another's: a sensor id removed from one tenant and given to another must not name,
        place or judge the first one's alarms with the second's (helper-122)."""
        info = self._by_id.get(sensor_id)
        if info is None or (info.tenant, info.site, info.device) != (tenant, site, device):
            return None
        return info

    def names(self, tenant: str, site: str, device: str = "") -> tuple[str, str, str]:
        """The configured names (`name:`) of a tenant, its site and the site's device, for
        people (a notification, a report); "" where none is set or the id is not configured
        (a removed tenant, the `vehicles` site, a gateway)."""
        found = self._names
        if not found:  # made whole, then put in at once (one C call): no half-made cache is read
            made = {}
            for t in self.config.tenants:
                made[(t.id, "", "")] = t.name
                for st in t.sites:
                    made[(t.id, st.id, "")] = st.name
                    for dev in st.devices:
                        made[(t.id, st.id, dev.id)] = dev.name
            found.update(made)
        return (
            found.get((tenant, "", ""), ""),
            found.get((tenant, site, ""), ""),
            found.get((tenant, site, device), "") if device else "",
        )

    def sensor_index(self, tenant: str, site: str, device: str, key: str) -> int | None:
        return self._by_key.get((tenant, site, device, key))

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.config.tenants)

    def sites_of(self, tenant: str) -> frozenset[str]:
        """The sites an alarm of `tenant` can be on: its configured ones, and `vehicles`."""
        found = {s.id for t in self.config.tenants if t.id == tenant for s in t.sites}
        return frozenset(found | {"vehicles"})

    @staticmethod
    def said_unknown(field: str, names: Sequence[str], tenant: str) -> str:
        """`unknown_names`' finding as a reason: `sites 'x' not in tenant 't'`, or for sensor
        kinds (no tenant's) which ones there are."""
        shown = ", ".join(map(repr, names))
        if field == "sensor_kinds":
            kinds = ", ".join(sorted(MATCH_SENSOR_KINDS))
            return f"sensor_kinds {shown}: no such kind (the kinds: {kinds})"
        return f"{field} {shown} not in tenant {tenant!r}"

    def unknown_names(self, tenant: str, named: object) -> tuple[str, list[str]] | None:
        """The first of `named`'s `sites`, `devices` and `sensors` (a subscription's match, a
        silence) with names not of `tenant`, and those names; None when all are. A gateway
        counts as a device (its offline alarm has it for its device), and so do the JT/T 808
        gateways for a tenant with vehicles."""
        known = self._known.get(tenant)
        if known is None:
            devices = {d for t, _, d in self.devices if t == tenant}
            devices |= {v for t, v in self.vehicles if t == tenant}
            devices |= {i.spec.gateway for (t, _, _), i in self.devices.items() if t == tenant}
            if any(t == tenant for t, _ in self.vehicles):
                devices |= set(self.config.jt808_gateways)
            known = self._known[tenant] = {
                "sites": self.sites_of(tenant),
                "devices": frozenset(devices),
                "sensors": frozenset(s.id for s in self.sensors if s.tenant == tenant),
                "sensor_kinds": MATCH_SENSOR_KINDS,
            }
        for name, names in known.items():
            unknown = sorted(set(getattr(named, name, ())) - names)
            if unknown:
                return name, unknown
        return None


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


def _sensor_paths(config: HubConfig) -> dict[str, str]:
    """The path of each device sensor in the file, for the errors (verify and suppress_when
    are only on those)."""
    return {
        sen.id: f"tenants.{ti}.sites.{si}.devices.{di}.sensors.{ki}"
        for ti, tenant in enumerate(config.tenants)
        for si, site in enumerate(tenant.sites)
        for di, dev in enumerate(site.devices)
        for ki, sen in enumerate(dev.sensors)
    }


def _check_verify(
    sensors: Iterable[SensorInfo], by_id: Mapping[str, SensorInfo], config: HubConfig, source: str
) -> None:
    paths = _sensor_paths(config)
    for info in sensors:
        spec = info.verify
        if spec is None:
            continue
        where = f"{source}: {paths[info.id]}.verify"
        which = f"(sensor {info.id!r} of device {info.device!r})"
        for key, fid in (("sensor", spec.sensor), *(("also", a) for a in spec.also)):
            feed = by_id.get(fid)
            if feed is None or feed.tenant != info.tenant:
                raise ConfigError(f"{where}.{key}: no sensor {fid!r} in its tenant {which}")
            if feed.index == info.index:
                raise ConfigError(f"{where}.{key}: not itself {which}")
        named = [lv.name for lv in info.levels if lv.above is not None or lv.below is not None]
        if not named:
            raise ConfigError(f"{where}: needs a level in the sensor's rule {which}")
        if spec.level is not None and spec.level not in named:
            raise ConfigError(f"{where}.level: no level named {spec.level!r} {which}")


def _unit_key(unit: str) -> str:
    """A unit as compared: Unicode compatibility forms folded (℃ is °C, ％ is %, μ and µ
    one), spaces and case aside."""
    return "".join(unicodedata.normalize("NFKC", unit).split()).casefold()


_INT_RANGES = {
    "bool": (0, 1),
    "bit": (0, 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
NAMUR_FAULT_MA = (3.6, 21.0)  # below or above: a sensor fault (NE 43), never judged


def readable(point: PointSpec) -> tuple[float, float, str] | None:
    """(lowest, highest, why) a point's judged readings can be: its `valid`, the span of a
    4-20 mA transmitter to the NAMUR fault limits (3.6 and 21 mA), the scaled range of an
    integer register; the narrowest of them (None: a float with no `valid`)."""
    found: list[tuple[float, float, str]] = []
    if point.valid is not None:
        found.append((*point.valid, "valid"))
    cur = point.current
    if cur is not None:
        per_ma = (cur.eng_max - cur.eng_min) / 16.0
        a, b = (cur.eng_min + (ma - 4.0) * per_ma for ma in NAMUR_FAULT_MA)
        found.append((min(a, b), max(a, b), "the 4-20 mA span to the fault limits 3.6-21 mA"))
    elif point.dtype in _INT_RANGES:
        r0, r1 = _INT_RANGES[point.dtype]
        a, b = r0 * point.scale + point.offset, r1 * point.scale + point.offset
        found.append(
            (min(a, b), max(a, b), f"a {point.dtype} register times scale {point.scale:g}")
        )
    if not found:
        return None
    lo = max(found, key=lambda f: f[0])
    hi = min(found, key=lambda f: f[1])
    why = lo[2] if lo[2] == hi[2] else f"{lo[2]}; {hi[2]}"
    return lo[0], hi[1], why


def _check_reachable(
    levels: Sequence[LevelSpec], point: PointSpec, sensor: str, where: str
) -> None:
    """A level beyond what the point can read (its `valid`, a 4-20 mA span to its fault limits,
    an integer register's scaled range) is never reached: a reading there is a sensor fault, or
    none can be. An overfill would read as a fault, never as the red HIHI, and its interlock
    check would never run (helper-109: a 16 m tank given a sphere's 12.5 m gauge; helper-115: a
    0-100 transmitter given a %OEL rule whose level 2 is 200)."""
    found = readable(point)
    if found is None:
        return
    lo, hi, why = found
    for lv in levels:
        at = lv.above if lv.above is not None else lv.below
        if at is not None and not lo <= at <= hi:
            raise ConfigError(
                f"{where}: sensor {sensor!r}'s level {lv.name!r} at {at:g} lies outside what "
                f"its point {point.name!r} can read ([{lo:g}, {hi:g}]: {why}): a reading there "
                "is a sensor fault, or none can be, so the level is never reached; check the "
                "rule, the sensor's levels or the profile's point"
            )


def _same_unit(unit: str, units: tuple[str, ...]) -> bool:
    """A sensor's unit is one of a rule's (Unicode forms, spaces and case aside), or either is
    not given."""
    norm = _unit_key(unit)
    return not norm or not units or norm in {_unit_key(u) for u in units}


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
                        unit = sen.unit or point.unit
                        if packed is not None and not _same_unit(unit, packed.units):
                            raise ConfigError(
                                f"{swhere}.rule: rule {sen.rule!r} has its levels in "
                                f"{' or '.join(packed.units)}, and sensor {sen.id!r} reads "
                                f"{unit!r}: "
                                "its alarms would come at the wrong value; pick a rule in "
                                "the sensor's unit, give it its own levels, or set the sensor's "
                                "`unit:` if the point is really in the rule's"
                            )
                        _check_reachable(levels, point, sen.id, swhere)
                        rate = sen.rate or (packed.rate if packed else None)
                        early = sen.early_warning or (packed.early_warning if packed else None)
                        frozen = sen.frozen or (packed.frozen if packed else None)
                        maintenance = sen.maintenance or (packed.maintenance if packed else None)
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
                info = SensorInfo(
                    index=len(sensors),
                    id=group.id,
                    tenant=tenant.id,
                    site=site.id,
                    device="",
                    key=f"group:{group.id}",
                    kind="other",
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
    _check_verify(sensors, by_id, config, source)
    paths = _sensor_paths(config)
    feeds = {f for s in sensors if s.verify for f in (s.verify.sensor, *s.verify.also)}
    for info in sensors:
        if info.maintenance and not (info.levels or info.no_data_s or info.id in feeds):
            raise ConfigError(
                f"{source}: {paths.get(info.id, info.id)}.maintenance: sensor {info.id!r} is "
                "judged for nothing: 'maintenance' needs levels (a rule), a no_data_s, or the "
                "sensor a verification's feedback"
            )
        for ci, cond in enumerate(info.suppress_when):
            other = by_id.get(cond.sensor)
            if other is None or other.tenant != info.tenant or other.index == info.index:
                raise ConfigError(
                    f"{source}: {paths.get(info.id, info.id)}.suppress_when.{ci}.sensor: "
                    f"sensor {info.id!r}: suppress_when names {cond.sensor!r}, "
                    "which is not another sensor of the same tenant"
                )

    registry = Registry(
        config,
        tuple(sensors),
        devices,
        vehicles,
        by_id,
        by_key,
        packs=pack_map,
    )
    for ti, tenant in enumerate(config.tenants):
        for field_name, items, inner in (
            ("subscriptions", tenant.subscriptions, "match."),
            ("silences", tenant.silences, ""),
        ):
            for oi, obj in enumerate(items):
                named = getattr(obj, "match", obj)
                unnamed = registry.unknown_names(tenant.id, named)
                if unnamed is not None:  # a typo silenced nothing, or heard nothing
                    raise ConfigError(
                        f"{source}: tenants.{ti}.{field_name}.{oi}.{inner}{unnamed[0]}: "
                        + Registry.said_unknown(*unnamed, tenant.id)
                    )

    # the centre's own subscriptions: their sites are any tenant's (helper-122: a typo heard
    # nothing, and `hazardhub check` said ok)
    all_sites = {st.id for t in config.tenants for st in t.sites} | {"vehicles"}
    for oi, sub in enumerate(config.notify.subscriptions):
        unknown = sorted(set(sub.match.sites) - all_sites)
        if unknown:
            raise ConfigError(
                f"{source}: notify.subscriptions.{oi}.match.sites: {unknown} is no tenant's site"
            )

    for ki, key in enumerate(config.api_keys):
        unknown = [t for t in key.tenants if t not in tenant_ids]
        if unknown:
            raise ConfigError(f"{source}: api_keys.{ki}.tenants: unknown tenant(s) {unknown}")

    return registry
