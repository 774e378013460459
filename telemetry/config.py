"""The configuration format: tenants, sites, devices, sensors, vehicles, profiles, rule packs.

Pure models (pydantic v2, frozen, extra fields forbidden). `telemetry.registry` resolves them
into the compiled view the other rooms use; reading files is the composition root's job.

Here: the hub's file (`HubConfig`), its tenants, sites, devices and sensors, voting groups,
hazardous inventory, vehicles and API keys. Device profiles and Modbus settings are in
`telemetry.deviceconfig`, alarm rules and rule packs in `telemetry.ruleconfig`; this module
re-exports them, so every model of the format imports from here.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from telemetry import hazard
from telemetry.bypassconfig import BypassSettings
from telemetry.configbase import Frozen, Ident, Label, Tier
from telemetry.deviceconfig import (
    CurrentSpec,
    DeviceProfile,
    InlineProfiles,
    ModbusSpec,
    PointSpec,
    ReportSpec,
    SerialSpec,
    StatusSpec,
    register_width,
)
from telemetry.fleetconfig import FleetSettings, Reminders
from telemetry.hazardconfig import HazardSettings
from telemetry.notifyconfig import (
    EscalationPolicySpec,
    NotifySettings,
    SilenceSpec,
    SubscriptionSpec,
    over_limit,
    recipients_problem,
)
from telemetry.ruleconfig import (
    CalibrationDueSpec,
    EarlyWarningSpec,
    FrozenSpec,
    LevelSpec,
    LockTestSpec,
    MaintenanceSpec,
    RateSpec,
    RulePack,
    RuleSpec,
    SensorKind,
    SuppressSpec,
    VerifySpec,
    check_levels,
)

__all__ = [
    "ApiKeySpec",
    "CalibrationDueSpec",
    "CurrentSpec",
    "DeviceProfile",
    "DeviceSpec",
    "EarlyWarningSpec",
    "FrozenSpec",
    "HubConfig",
    "Ident",
    "InventoryItemSpec",
    "LevelSpec",
    "LockTestSpec",
    "MaintenanceSpec",
    "ModbusSpec",
    "PointSpec",
    "RateSpec",
    "ReportSpec",
    "RulePack",
    "RuleSpec",
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
    "register_width",
]

RuleRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")]


class SensorSpec(Frozen):
    id: Ident
    point: Ident
    kind: SensorKind
    unit: str = ""
    location: Label = ""
    tag: Label = Field(default="", description="placement tag, e.g. T0/T1/T2 in a coal mine")
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
    frozen: FrozenSpec | None = Field(
        default=None, description="overrides the rule's frozen-value check"
    )
    maintenance: MaintenanceSpec | None = Field(
        default=None, description="overrides the rule's limit on calibration and manual time"
    )
    calibration_due: CalibrationDueSpec | None = Field(
        default=None, description="overrides the rule's calibration interval (标校超期)"
    )
    suppress_when: tuple[SuppressSpec, ...] = Field(
        default=(), max_length=8, description="suppression by design: any one of these"
    )

    @model_validator(mode="after")
    def _rule_or_levels(self) -> Self:
        if self.rule is not None and self.levels:
            raise ValueError("give either 'rule' (a rule pack entry) or inline 'levels', not both")
        check_levels(self.levels)
        if (
            self.rule is None
            and not self.levels
            and (self.rate or self.early_warning or self.frozen)
        ):
            raise ValueError("'rate', 'early_warning' and 'frozen' need a rule or levels")
        return self


class DeviceSpec(Frozen):
    id: Ident
    name: Label = ""
    profile: Ident
    gateway: Ident = "gw1"
    modbus: ModbusSpec = ModbusSpec()
    report: ReportSpec = ReportSpec()
    sensors: tuple[SensorSpec, ...] = ()


class VoteGroupSpec(Frozen):
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
    location: Label = ""
    count_failed: bool = Field(
        default=False,
        description="a member in sensor fault or without data (comm loss, silence) counts as at "
        "the level (fail-safe, IEC 61511 degraded voting): 2 of 3 with one failed trips on one "
        "more detector, 1 of the 2 that measure",
    )

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError("a group lists each sensor once")
        if self.k > len(self.sensors):
            raise ValueError(f"k={self.k} is more than the {len(self.sensors)} sensors")
        return self


class InventoryItemSpec(Frozen):
    """One hazardous chemical held at the site, for the GB 18218-2018 identification and grading
    (`telemetry.hazard`). A substance of the built-in table takes its critical quantity and β
    from it (a `critical_t` beside a built-in Q is accepted, the table's used); any other needs
    `critical_t` and one of `beta` and `ghs`."""

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
        description="Q (t): required for a substance (or toxic gas) without a built-in Q; for "
        "one with, the built-in Q (GB 18218-2018 Table 1) is used, and a value that differs is "
        "said at the hub's start and in GET /api/v1/sites (critical_t_given)",
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


class SiteSpec(Frozen):
    id: Ident
    name: Label = ""
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


class VehicleSpec(Frozen):
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
    remind: Reminders | None = Field(
        default=None,
        description="alarm kind -> the text its driver hears when the hub raises it; replaces "
        "the class's `fleet: {class: {remind: ...}}` (`{}`: none for this vehicle)",
    )

    @field_validator("terminal", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        """An unquoted number in YAML is an integer: its leading zeros are gone (a 2019 header's
        are many), so say to quote it (it said "Input should be a valid string", helper-139)."""
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                f'write the terminal number in quotes, terminal: "{value}" (a number '
                "loses its leading zeros)"
            )
        return value


class TenantSpec(Frozen):
    id: Ident
    name: Label = ""
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
        for kind, items in (
            ("subscription", self.subscriptions),
            ("escalation", self.escalation_policies),
            ("silence", self.silences),
        ):
            problem = over_limit(kind, len(items))
            if problem is not None:
                raise ValueError(problem)
        specs: list[SubscriptionSpec | EscalationPolicySpec] = [*self.subscriptions]
        specs += self.escalation_policies
        for spec in specs:
            problem = recipients_problem(spec)
            if problem is not None:
                raise ValueError(problem)
        return self


class ApiKeySpec(Frozen):
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


class HubConfig(Frozen):
    version: Literal[1] = 1
    tenants: tuple[TenantSpec, ...] = ()
    api_keys: tuple[ApiKeySpec, ...] = ()
    device_profiles: InlineProfiles = Field(
        default=(), description="profiles given inline, beside those under profiles/devices"
    )
    rule_packs: tuple[RulePack, ...] = Field(
        default=(), description="rule packs given inline, beside those under profiles/rules"
    )
    notify: NotifySettings = NotifySettings()
    fleet: FleetSettings = Field(
        default_factory=FleetSettings, description="platform-side driving-safety analytics"
    )
    gateway_offline_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="a gateway whose status is offline (its last will: killed, powered off, "
        "link cut) this long raises a gateway_offline alarm per site it serves (0: none)",
    )
    gateway_never_connected_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="a gateway named by a device from which the hub has heard no status at all "
        "this long after the hub's first connection to the broker (or after a reload named it) "
        "raises its gateway_offline alarm per site, marked never connected (0: none)",
    )
    jt808_gateways: tuple[Ident, ...] = Field(
        default=("jt808",),
        description="the names of the JT/T 808 gateways (`hazardhub jt808 --name`): each one's "
        "status raises a gateway_offline alarm of every tenant's vehicles, and its MQTT login "
        "may write the status and drop reports of these names only; no device's gateway may "
        "take one of them",
    )
    lateness_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="lateness window: a reading this much older than its sensor's newest is "
        "still judged in order (0: late readings are counted, not judged)",
    )
    hazards: HazardSettings = Field(
        default_factory=HazardSettings,
        description="hidden-danger items opened from alarms active too long (docs/hazards.md)",
    )
    interlock_bypass: BypassSettings = Field(
        default_factory=BypassSettings,
        description="interlock bypass approvals: the bypass_unapproved alarm (docs/rules.md)",
    )

    @model_validator(mode="after")
    def _hazard_tenants(self) -> Self:
        known = {t.id for t in self.tenants}
        for ri, rule in enumerate(self.hazards.from_alarms):
            unknown = [t for t in rule.tenants if t not in known]
            if unknown:
                raise ValueError(f"hazards.from_alarms.{ri}.tenants: unknown tenant(s) {unknown}")
        return self
