"""The configuration format: tenants, sites, devices, sensors, vehicles, profiles, rule packs.

Pure models (pydantic v2, frozen, extra fields forbidden). `telemetry.registry` resolves them
into the compiled view the other rooms use; reading files is the composition root's job.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from telemetry import hazard
from telemetry.fleetconfig import FleetSettings
from telemetry.notifyconfig import (
    EscalationPolicySpec,
    NotifySettings,
    SilenceSpec,
    SubscriptionSpec,
)

__all__ = [
    "ApiKeySpec",
    "CurrentSpec",
    "DeviceProfile",
    "DeviceSpec",
    "EarlyWarningSpec",
    "HubConfig",
    "InventoryItemSpec",
    "LevelSpec",
    "ModbusSpec",
    "PointSpec",
    "RateSpec",
    "ReportSpec",
    "RulePack",
    "SensorKind",
    "SensorSpec",
    "SerialSpec",
    "SiteSpec",
    "StatusSpec",
    "SuppressSpec",
    "TenantSpec",
    "Tier",
    "VehicleSpec",
    "VerifySpec",
    "VoteGroupSpec",
]

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
RuleRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")]
Tier = Literal["blue", "yellow", "orange", "red"]
SensorKind = Literal[
    "methane",
    "co",
    "flammable_gas",
    "toxic_gas",
    "oxygen",
    "level",
    "pressure",
    "temperature",
    "wind_speed",
    "power_feed",
    "interlock",
    "speed",
    "other",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LevelSpec(_Frozen):
    """One alarm level: raised when the value reaches `above` (or falls to `below`), cleared only
    when it returns past `recover` (hysteresis)."""

    name: Ident
    tier: Tier
    above: float | None = None
    below: float | None = None
    recover: float
    action: str = Field(default="", max_length=200, description="protective action, e.g. power cut")
    note: str = Field(
        default="", max_length=500, description="source and confidence of the numbers"
    )
    on_delay_s: float = Field(
        default=0.0, ge=0, le=86400, description="the condition must hold this long (event time)"
    )
    off_delay_s: float = Field(
        default=0.0, ge=0, le=86400, description="the recovery must hold this long (event time)"
    )
    on_samples: int = Field(default=1, ge=1, le=1000, description="N judged readings in a row")
    off_samples: int = Field(default=1, ge=1, le=1000, description="N recovered readings in a row")

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("a level sets exactly one of 'above' and 'below'")
        if self.above is not None and self.recover > self.above:
            raise ValueError(f"recover {self.recover} must be <= above {self.above}")
        if self.below is not None and self.recover < self.below:
            raise ValueError(f"recover {self.recover} must be >= below {self.below}")
        return self


def _check_levels(levels: tuple[LevelSpec, ...]) -> None:
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise ValueError("level names must be unique within a rule")
    highs = [lv.above for lv in levels if lv.above is not None]
    lows = [lv.below for lv in levels if lv.below is not None]
    if len(highs) > 4 or len(lows) > 4:
        raise ValueError("at most four levels above and four below")
    # equal thresholds are allowed: coal-mine return airways alarm and cut power at the same 1.0 %
    if highs != sorted(highs):
        raise ValueError("levels above must be listed with rising thresholds")
    if lows != sorted(lows, reverse=True):
        raise ValueError("levels below must be listed with falling thresholds")


class VerifySpec(_Frozen):
    """A protective action to verify: when the sensor reaches `level` (default: its highest level
    above), the feedback sensor must read below `expect_below` (or above `expect_above`) within
    `within_s` of the event time, else a 'power cut failed' (馈电异常) alarm is raised."""

    sensor: Ident = Field(description="id of the feedback sensor, e.g. the face power feed")
    level: Ident | None = None
    expect_below: float | None = None
    expect_above: float | None = None
    within_s: float = Field(gt=0, le=3600)
    grace_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="with no feedback reading past the deadline, wait this long on the hub's "
        "clock for one in transit before declaring the failure",
    )

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.expect_below is None) == (self.expect_above is None):
            raise ValueError("verify sets exactly one of 'expect_below' and 'expect_above'")
        return self


class RateSpec(_Frozen):
    """Rate of rise: a 'rate' alarm when the value rose by more than `per_min` per minute over the
    last `window_s` of event time (newest reading against the oldest in the window); it clears
    when the rise falls below `per_min * recover_factor` (hysteresis)."""

    per_min: float = Field(gt=0, description="rise per minute, in the sensor's unit")
    window_s: float = Field(gt=0, le=3600)
    tier: Tier = "yellow"
    recover_factor: float = Field(
        default=0.8, gt=0, le=1, description="clear below per_min * recover_factor"
    )
    action: str = Field(default="", max_length=200)


class EarlyWarningSpec(_Frozen):
    """Early warning (blue tier): the least-squares slope over the last `window_s` of event time
    projects when the value reaches the next level above; under `horizon_s`, warn."""

    window_s: float = Field(gt=0, le=3600)
    horizon_s: float = Field(gt=0, le=86400)


class RuleSpec(_Frozen):
    description: str = ""
    levels: tuple[LevelSpec, ...] = Field(min_length=1)
    no_data_s: float | None = Field(
        default=None, gt=0, le=86400, description="raise 'no data' after this long without data"
    )
    rate: RateSpec | None = None
    early_warning: EarlyWarningSpec | None = None

    @model_validator(mode="after")
    def _levels(self) -> Self:
        _check_levels(self.levels)
        if self.early_warning is not None and all(lv.above is None for lv in self.levels):
            raise ValueError("early_warning needs a level above")
        return self


class RulePack(_Frozen):
    """A named set of rules, shipped under ``profiles/rules/``; referenced as ``pack.rule``."""

    name: Ident
    description: str = ""
    source: str = ""
    rules: dict[Ident, RuleSpec]


class CurrentSpec(_Frozen):
    """A 4-20 mA transmitter behind the register: the raw value is a current, judged by NAMUR
    NE 43 (below 3.6 mA or above 21 mA: sensor fault; 3.6-3.8 and 20.5-21 mA: saturated, out of
    range) and scaled linearly from 4-20 mA to eng_min-eng_max."""

    raw_4ma: float = Field(default=4000.0, description="raw value at 4 mA (default: µA)")
    raw_20ma: float = 20000.0
    eng_min: float
    eng_max: float

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.raw_20ma == self.raw_4ma or self.eng_max == self.eng_min:
            raise ValueError("the 4 mA and 20 mA points must differ, and so must eng_min/eng_max")
        return self


class PointSpec(_Frozen):
    """One value a device exposes over Modbus (register addresses are 0-based).

    Byte and word order of multi-register values: ABCD big-endian, CDAB words swapped, BADC bytes
    swapped in each word, DCBA little-endian. The value is raw * scale + offset, or, with
    `current`, the 4-20 mA scaling."""

    name: Ident
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    dtype: Literal["bool", "bit", "int16", "uint16", "int32", "uint32", "float32", "float64"] = (
        "uint16"
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="for dtype 'bit'")
    word_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    current: CurrentSpec | None = None
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _table_type(self) -> Self:
        bit_table = self.table in ("coil", "discrete")
        if bit_table != (self.dtype == "bool"):
            raise ValueError("coils and discrete inputs are dtype 'bool', registers are not")
        if (self.dtype == "bit") != (self.bit is not None):
            raise ValueError("dtype 'bit' needs 'bit' (0-15), and only it does")
        if self.current is not None and self.dtype in ("bool", "bit"):
            raise ValueError("a 4-20 mA point needs a numeric dtype")
        if self.address + register_width(self.dtype) > 65536:
            raise ValueError("point runs past register 65535")
        return self


def register_width(dtype: str) -> int:
    """Registers (or bits) a value of `dtype` occupies."""
    return {"int32": 2, "uint32": 2, "float32": 2, "float64": 4}.get(dtype, 1)


class StatusSpec(_Frozen):
    """A status register (or bit) that sets the quality of points: e.g. a detector's fault bit."""

    point: Ident
    bit: int | None = Field(default=None, ge=0, le=15, description="None: the whole value")
    equals: int | None = Field(default=None, description="None: any non-zero value")
    quality: Literal["sensor_fault", "out_of_range", "calibration", "manual"]
    applies_to: tuple[Ident, ...] = Field(default=(), description="empty: every point")


class DeviceProfile(_Frozen):
    """A device's register map, shipped under ``profiles/devices/``."""

    name: Ident
    description: str = ""
    points: tuple[PointSpec, ...] = Field(min_length=1)
    status: tuple[StatusSpec, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ValueError("point names must be unique within a profile")
        for st in self.status:
            unknown = [n for n in (st.point, *st.applies_to) if n not in names]
            if unknown:
                raise ValueError(f"status refers to unknown point(s) {unknown}")
        return self


class SerialSpec(_Frozen):
    """An RS-485/RS-232 line for Modbus RTU."""

    port: str = Field(min_length=1, description="e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class ModbusSpec(_Frozen):
    """How to reach a device. Devices with the same endpoint share one connection (a bus) and
    one request queue."""

    transport: Literal["tcp", "rtu-over-tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=0, le=65535)
    serial: SerialSpec | None = None
    unit: int = Field(default=1, ge=0, le=247)
    poll_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=0, ge=0, le=5, description="re-sends after a timeout")
    backoff_max_s: float = Field(
        default=30.0, gt=0, le=3600, description="a silent unit is asked again at most this late"
    )

    @model_validator(mode="after")
    def _serial(self) -> Self:
        if (self.transport == "rtu") != (self.serial is not None):
            raise ValueError("transport 'rtu' needs 'serial' (and only it does)")
        return self

    def endpoint(self) -> tuple[str, str]:
        """What identifies the bus: devices with equal endpoints share one connection."""
        if self.serial is not None:
            return ("rtu", self.serial.port)
        return (self.transport, f"{self.host}:{self.port}")


class ReportSpec(_Frozen):
    """Report-on-change: a reading is sent when it moved by more than the sensor's deadband,
    when its quality changed, or when the sensor has been silent for `max_silent_s`."""

    on_change: bool = False
    max_silent_s: float = Field(default=60.0, gt=0, le=86400)


class SuppressSpec(_Frozen):
    """Suppression by design (ISA-18.2): the sensor's alarms are recorded but not notified while
    another sensor reads below or above a value (the unit is shut down), or while it has an
    active alarm (an upstream alarm explains this one)."""

    sensor: Ident
    below: float | None = None
    above: float | None = None
    alarm: bool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum((self.below is not None, self.above is not None, self.alarm)) != 1:
            raise ValueError("give exactly one of 'below', 'above' or 'alarm: true'")
        return self


class SensorSpec(_Frozen):
    id: Ident
    point: Ident
    kind: SensorKind
    unit: str = ""
    location: str = ""
    tag: str = Field(default="", description="placement tag, e.g. T0/T1/T2 in a coal mine")
    deadband: float = Field(default=0.0, ge=0, description="report-on-change threshold")
    rule: RuleRef | None = None
    levels: tuple[LevelSpec, ...] = ()
    no_data_s: float | None = Field(
        default=None, gt=0, le=86400, description="overrides the rule's no-data timeout"
    )
    verify: VerifySpec | None = None
    rate: RateSpec | None = Field(default=None, description="overrides the rule's rate of rise")
    early_warning: EarlyWarningSpec | None = Field(
        default=None, description="overrides the rule's early warning"
    )
    suppress_when: tuple[SuppressSpec, ...] = Field(
        default=(), max_length=8, description="suppression by design: any one of these"
    )

    @model_validator(mode="after")
    def _rule_or_levels(self) -> Self:
        if self.rule is not None and self.levels:
            raise ValueError("give either 'rule' (a rule pack entry) or inline 'levels', not both")
        _check_levels(self.levels)
        if self.rule is None and not self.levels and (self.rate or self.early_warning):
            raise ValueError("'rate' and 'early_warning' need a rule or levels")
        return self


class DeviceSpec(_Frozen):
    id: Ident
    name: str = ""
    profile: Ident
    gateway: Ident = "gw1"
    modbus: ModbusSpec = ModbusSpec()
    report: ReportSpec = ReportSpec()
    sensors: tuple[SensorSpec, ...] = ()


class VoteGroupSpec(_Frozen):
    """k-of-n voting: when `k` of the member sensors are at level `at_level` (above) or higher,
    the group (an area) raises its own level, e.g. 2 of 3 detectors at level 1 -> area level 2.
    The group is judged like a sensor whose value is the number of members at that level."""

    id: Ident
    sensors: tuple[Ident, ...] = Field(min_length=2)
    k: int = Field(ge=1)
    at_level: int = Field(default=1, ge=1, le=4)
    name: Ident = "area_level2"
    tier: Tier = "red"
    action: str = Field(default="", max_length=200)
    location: str = ""

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError("a group lists each sensor once")
        if self.k > len(self.sensors):
            raise ValueError(f"k={self.k} is more than the {len(self.sensors)} sensors")
        return self


class InventoryItemSpec(_Frozen):
    """One hazardous chemical held at the site, for the GB 18218-2018 identification and grading
    (`telemetry.hazard`). A substance of the built-in table takes its critical quantity and β
    from it; any other needs `critical_t` and one of `beta` and `ghs`."""

    substance: str = Field(
        min_length=1, max_length=100, description="Chinese or English name, or CAS number"
    )
    quantity_t: float = Field(
        ge=0, allow_inf_nan=False, description="the design maximum quantity in the unit (t)"
    )
    critical_t: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Q (t), for a substance (or toxic gas) without a built-in Q",
    )
    beta: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="β, for a substance not in the table"
    )
    ghs: hazard.GhsCategory | None = Field(
        default=None, description="the GB 18218-2018 category (J1-J5, W1.1-W11) that sets β"
    )
    note: str = Field(default="", max_length=200, description="tank, warehouse, source ...")

    @model_validator(mode="after")
    def _resolves(self) -> Self:
        self.resolve()
        return self

    def resolve(self) -> hazard.Item:
        return hazard.resolve(
            self.substance,
            self.quantity_t,
            critical_t=self.critical_t,
            beta=self.beta,
            ghs=self.ghs,
        )


class SiteSpec(_Frozen):
    id: Ident
    name: str = ""
    kind: Literal["chemical", "mine", "crane", "other"] = "other"
    major_hazard_grade: int | None = Field(
        default=None, ge=1, le=4, description="the declared grade, checked against `inventory`"
    )
    inventory: tuple[InventoryItemSpec, ...] | None = Field(
        default=None, max_length=1000, description="hazardous chemicals held (GB 18218-2018)"
    )
    people_500m: int | None = Field(
        default=None, ge=0, description="people outside the site within 500 m (sets α)"
    )
    devices: tuple[DeviceSpec, ...] = ()
    groups: tuple[VoteGroupSpec, ...] = Field(default=(), description="k-of-n voting groups")

    @model_validator(mode="after")
    def _reserved(self) -> Self:
        if self.id in ("vehicles", "gateways", "alarms"):
            raise ValueError(f"site id {self.id!r} is reserved by the topic layout")
        return self


class VehicleSpec(_Frozen):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    id: Ident
    plate: str = Field(min_length=1, max_length=16)
    vehicle_class: Literal["hazmat", "coach", "charter"] = Field(alias="class")
    rule: RuleRef | Literal["none"] | None = Field(
        default=None,
        description="per-reading speed rule; default per vehicle class; 'none': only the fleet's "
        "overspeed (zones, night, minimum duration) judges the speed",
    )
    terminal: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,20}$",
        description="JT/T 808 terminal phone number (SIM id) of the vehicle's terminal",
    )


class TenantSpec(_Frozen):
    id: Ident
    name: str = ""
    sites: tuple[SiteSpec, ...] = ()
    vehicles: tuple[VehicleSpec, ...] = ()
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    escalation_policies: tuple[EscalationPolicySpec, ...] = ()
    silences: tuple[SilenceSpec, ...] = ()

    @model_validator(mode="after")
    def _notify_refs(self) -> Self:
        for name, items in (
            ("subscriptions", self.subscriptions),
            ("escalation_policies", self.escalation_policies),
            ("silences", self.silences),
        ):
            ids = [x.id for x in items]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name}: ids must be unique within a tenant")
        policies = {p.id for p in self.escalation_policies}
        for sub in self.subscriptions:
            if sub.escalation is not None and sub.escalation not in policies:
                raise ValueError(
                    f"subscription {sub.id!r}: no escalation policy {sub.escalation!r}"
                )
        return self


class ApiKeySpec(_Frozen):
    """An API key, stored only as the SHA-256 hex digest of the key."""

    name: Ident
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    role: Literal["admin", "operator", "enterprise", "viewer"]
    tenants: tuple[Ident, ...] = Field(default=(), description="empty = all (admin, operator)")

    @model_validator(mode="after")
    def _scope(self) -> Self:
        if self.role in ("enterprise", "viewer") and not self.tenants:
            raise ValueError(f"a key with role {self.role!r} must name its tenants")
        return self


class HubConfig(_Frozen):
    version: Literal[1] = 1
    tenants: tuple[TenantSpec, ...] = ()
    api_keys: tuple[ApiKeySpec, ...] = ()
    device_profiles: tuple[DeviceProfile, ...] = Field(
        default=(), description="profiles given inline, beside those under profiles/devices"
    )
    rule_packs: tuple[RulePack, ...] = Field(
        default=(), description="rule packs given inline, beside those under profiles/rules"
    )
    notify: NotifySettings = NotifySettings()
    fleet: FleetSettings = Field(
        default_factory=FleetSettings, description="platform-side driving-safety analytics"
    )
    lateness_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="lateness window: a reading this much older than its sensor's newest is "
        "still judged in order (0: late readings are counted, not judged)",
    )
