"""The compiled registry's types: each sensor, device and vehicle as the configuration resolves
them (`SensorInfo`, `DeviceInfo`, `VehicleInfo`), and the `Registry` that indexes them.
`telemetry.registry` builds it from a `HubConfig` and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from telemetry.config import (
    CalibrationDueSpec,
    DeviceProfile,
    DeviceSpec,
    EarlyWarningSpec,
    FrozenSpec,
    HubConfig,
    LevelSpec,
    LockTestSpec,
    MaintenanceSpec,
    PointSpec,
    RateSpec,
    RulePack,
    SensorKind,
    SuppressSpec,
    VehicleSpec,
    VerifySpec,
)
from telemetry.notifyconfig import MATCH_SENSOR_KINDS

__all__ = ["DeviceInfo", "Registry", "SensorInfo", "VehicleInfo"]


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
    # the calibration interval (标校超期): the sensor's own, else its rule's
    calibration_due: CalibrationDueSpec | None = None
    # the lock-out test interval of its plan (`verify`): the plan's own, else its rule's; None
    # without a plan (`alerts.locktests`)
    lock_test: LockTestSpec | None = None


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
        people (a notification, a report); a vehicle's plate for the device of the `vehicles`
        site (as the alarm API's `device_name`); "" where none is set or the id is not
        configured (a removed tenant, the `vehicles` site itself, a gateway)."""
        found = self._names
        if not found:  # made whole, then put in at once (one C call): no half-made cache is read
            made = {}
            for t in self.config.tenants:
                made[(t.id, "", "")] = t.name
                for st in t.sites:
                    made[(t.id, st.id, "")] = st.name
                    for dev in st.devices:
                        made[(t.id, st.id, dev.id)] = dev.name
                for v in t.vehicles:
                    made[(t.id, "vehicles", v.id)] = v.plate
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
