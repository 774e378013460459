"""The registry's checks of a configuration beyond its models' own: what a sensor's verification,
suppression and maintenance limit name, whether its levels are within what its point can read
and in its rule's unit, and what the subscriptions, silences and API keys name. Used by
`telemetry.registry.build_registry`; each raises `ConfigError` naming the place in the file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from telemetry.config import HubConfig, LevelSpec, PointSpec
from telemetry.errors import ConfigError
from telemetry.hazardconfig import BUILTIN_RULES
from telemetry.registrytypes import Registry, SensorInfo

__all__ = [
    "NAMUR_FAULT_MA",
    "check_hazard_rules",
    "check_names",
    "check_plates",
    "check_reachable",
    "check_sensors",
    "check_terminals",
    "critical_t_notices",
    "duplicate_plates",
    "feedback_ids",
    "plate_key",
    "readable",
    "same_unit",
    "sensor_paths",
]


def feedback_ids(sensors: Iterable[SensorInfo]) -> set[str]:
    """The sensors that are a verification's feedback (a power feed, a crane's hoist circuit)."""
    return {f for s in sensors if s.verify for f in (s.verify.sensor, *s.verify.also)}


def sensor_paths(config: HubConfig) -> dict[str, str]:
    """The path of each device sensor in the file, for the errors (verify and suppress_when
    are only on those)."""
    return {
        sen.id: f"tenants.{ti}.sites.{si}.devices.{di}.sensors.{ki}"
        for ti, tenant in enumerate(config.tenants)
        for si, site in enumerate(tenant.sites)
        for di, dev in enumerate(site.devices)
        for ki, sen in enumerate(dev.sensors)
    }


def check_verify(
    sensors: Iterable[SensorInfo], by_id: Mapping[str, SensorInfo], config: HubConfig, source: str
) -> None:
    paths = sensor_paths(config)
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


def check_reachable(levels: Sequence[LevelSpec], point: PointSpec, sensor: str, where: str) -> None:
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
                f"{where}: the level {lv.name!r} of sensor {sensor!r} at {at:g} lies outside what "
                f"its point {point.name!r} can read ([{lo:g}, {hi:g}]: {why}): a reading there "
                "is a sensor fault, or none can be, so the level is never reached; check the "
                "rule, the sensor's levels or the profile's point"
            )


def same_unit(unit: str, units: tuple[str, ...]) -> bool:
    """A sensor's unit is one of a rule's (Unicode forms, spaces and case aside), or either is
    not given."""
    norm = _unit_key(unit)
    return not norm or not units or norm in {_unit_key(u) for u in units}


def check_sensors(
    sensors: Sequence[SensorInfo], by_id: Mapping[str, SensorInfo], config: HubConfig, source: str
) -> None:
    """What the sensors' verifications, maintenance limits, calibration intervals and
    suppressions name."""
    check_verify(sensors, by_id, config, source)
    paths = sensor_paths(config)
    feeds = feedback_ids(sensors)
    for info in sensors:
        judged = info.levels or info.no_data_s or info.id in feeds
        for name in ("maintenance", "calibration_due"):
            if getattr(info, name) and not judged:
                raise ConfigError(
                    f"{source}: {paths.get(info.id, info.id)}.{name}: sensor {info.id!r} is "
                    f"judged for nothing: '{name}' needs levels (a rule), a no_data_s, or the "
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


def check_terminals(config: HubConfig, source: str) -> None:
    """A JT/T 808 terminal number names one vehicle of the whole hub: a 2013 header (12 digits)
    and a 2019 one (20) carry the same SIM with more leading zeros, so numbers are compared
    without them. The JT/T 808 gateway refused a second vehicle of one number at its start only:
    `hazardhub check` and the hub took it, and one added through the API took the gateway down
    with the whole fleet (helper-139). A number of zeros names no SIM."""
    seen: dict[str, str] = {}
    for ti, tenant in enumerate(config.tenants):
        for vi, vehicle in enumerate(tenant.vehicles):
            if not vehicle.terminal:
                continue
            where = f"{source}: tenants.{ti}.vehicles.{vi}.terminal"
            key = vehicle.terminal.lstrip("0")
            if not key:
                raise ConfigError(f"{where}: {vehicle.terminal!r} is no terminal's number")
            other = seen.get(key)
            if other is not None:
                raise ConfigError(
                    f"{where}: terminal {vehicle.terminal} is also {other}'s (numbers are "
                    "compared without leading zeros: a 2013 and a 2019 header say one SIM alike)"
                )
            seen[key] = f"{tenant.id}/{vehicle.id}"


def check_plates(
    config: HubConfig,
    source: str,
    allowed: frozenset[str] = frozenset(),
    known: frozenset[str] = frozenset(),
) -> None:
    """A number plate names one vehicle in the country, and so of the whole hub: two vehicles of
    one plate (of two enterprises, or one's typo) showed the centre two tracks and two alarm
    lists under one plate. Compared as a plate is read: without the dot, spaces and dashes
    written in it, letters in capitals (苏A·D1234 is 苏AD1234 and 苏a d1234). A vehicle that
    changes hands is removed from the one enterprise as it is added to the other. Plates of
    `allowed` (`plate_key`s) may be twice: a configuration that had them before this check
    (run by `hazardhub check` and for a change through the API, not at a hub's start, which
    warns: `duplicate_plates`) keeps running, and each change leaves them as they were. The
    error is at the vehicle not among `known` ("tenant/vehicle": those there before a change),
    naming the one that had the plate."""
    seen: dict[str, tuple[str, str]] = {}
    for ti, tenant in enumerate(config.tenants):
        for vi, vehicle in enumerate(tenant.vehicles):
            key = plate_key(vehicle.plate)
            where = f"tenants.{ti}.vehicles.{vi}.plate"
            if not key:
                raise ConfigError(f"{source}: {where}: {vehicle.plate!r} is no plate")
            this = (f"{tenant.id}/{vehicle.id}", where)
            other = seen.get(key)
            if other is not None and key not in allowed:
                if this[0] in known and other[0] not in known:  # the one added is the other
                    this, other = other, this
                raise ConfigError(
                    f"{source}: {this[1]}: plate {vehicle.plate} is also {other[0]}'s ({other[1]})"
                )
            seen.setdefault(key, this)


def duplicate_plates(config: HubConfig) -> dict[str, list[str]]:
    """The plates (`plate_key`) of more than one vehicle, with those vehicles."""
    by: dict[str, list[str]] = {}
    for tenant in config.tenants:
        for vehicle in tenant.vehicles:
            by.setdefault(plate_key(vehicle.plate), []).append(f"{tenant.id}/{vehicle.id}")
    return {k: v for k, v in by.items() if len(v) > 1}


def plate_key(plate: str) -> str:
    """A plate as compared: the separators written in it out, letters in capitals."""
    return "".join(c for c in plate if c not in "·•.-_ \u3000\t").upper()


def check_hazard_rules(registry: Registry, source: str) -> None:
    """The alarm rules an alarm -> hazard rule names (`hazards.from_alarms.N.rules`): a rule
    pack's `pack.rule`, a sensor's, or one of the hub's own; a typo opened nothing."""
    known = {f"{p.name}.{r}" for p in registry.packs.values() for r in p.rules}
    known |= {s.rule for s in registry.sensors if s.rule} | set(BUILTIN_RULES)
    for ri, rule in enumerate(registry.config.hazards.from_alarms):
        unknown = [r for r in rule.rules if r not in known]
        if unknown:
            raise ConfigError(
                f"{source}: hazards.from_alarms.{ri}.rules: unknown rule(s) {unknown}: a rule "
                f"pack's `pack.rule` (chem-process.interlock-bypass) or the hub's own "
                f"({', '.join(BUILTIN_RULES)})"
            )


def check_names(registry: Registry, source: str) -> None:
    """What the tenants' subscriptions and silences, the centre's subscriptions and the API keys
    name: a typo silenced nothing, or heard nothing."""
    config = registry.config
    for ti, tenant in enumerate(config.tenants):
        for field_name, items, inner in (
            ("subscriptions", tenant.subscriptions, "match."),
            ("silences", tenant.silences, ""),
        ):
            for oi, obj in enumerate(items):
                named = getattr(obj, "match", obj)
                unnamed = registry.unknown_names(tenant.id, named)
                if unnamed is not None:
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
    tenant_ids = set(registry.tenants)
    for ki, key in enumerate(config.api_keys):
        unknown = [t for t in key.tenants if t not in tenant_ids]
        if unknown:
            raise ConfigError(f"{source}: api_keys.{ki}.tenants: unknown tenant(s) {unknown}")


def critical_t_notices(config: HubConfig) -> list[str]:
    """A line for each inventory item whose `critical_t` differs from the critical quantity the
    hub's GB 18218-2018 table carries for its substance: the table's is used (the regulation's
    value is never overridden by a file's), and this says so, for the hub's log at start. A
    `critical_t` is accepted beside a built-in Q so that a file keeps loading when a release adds
    the substance's Q; one that differs is a mistake in the file, or in our table."""
    said = []
    for ti, tenant in enumerate(config.tenants):
        for si, site in enumerate(tenant.sites):
            for ii, spec in enumerate(site.inventory or ()):
                item = spec.resolve()
                if item.critical_t_given is None:
                    continue
                said.append(
                    f"tenants.{ti}.sites.{si}.inventory.{ii} ({tenant.id}/{site.id}, "
                    f"{spec.substance}): critical_t {float(item.critical_t_given):g} t differs "
                    f"from the critical quantity of {item.name}, {float(item.critical_t):g} t, "
                    "in the hub's GB 18218-2018 Table 1: the table's is used for the site's "
                    "identification and grade; correct critical_t or remove it (if the "
                    "standard's text says otherwise, the hub's table is wrong: report it)"
                )
    return said
