"""Public response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlarmEventPublic",
    "AlarmPublic",
    "LatestPublic",
    "LevelPublic",
    "MePublic",
    "MinMaxPublic",
    "PointPublic",
    "ReadingPointPublic",
    "SensorPublic",
    "TrackPointPublic",
    "VehiclePublic",
]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class LevelPublic(_Public):
    name: str
    tier: str
    above: float | None
    below: float | None
    recover: float
    action: str
    note: str = Field(default="", description="source and confidence of the numbers")
    on_delay_s: float = Field(default=0.0, description="the condition must hold this long")
    off_delay_s: float = Field(default=0.0, description="the recovery must hold this long")
    on_samples: int = Field(default=1, description="judged readings in a row to raise")
    off_samples: int = Field(default=1, description="recovered readings in a row to clear")


class SensorPublic(_Public):
    id: str
    tenant: str
    tenant_name: str = Field(
        default="", description="the tenant's (enterprise's) name as configured; '' when none"
    )
    site: str
    site_name: str = Field(
        default="",
        description="the site's name as configured; '' when none (and for `vehicles`): two "
        "enterprises may give a site the same id",
    )
    device: str
    kind: str
    unit: str
    location: str
    tag: str
    rule: str
    levels: list[LevelPublic]
    no_data_s: float | None = Field(
        default=None,
        description="after this long without a reading the sensor raises `no_data` (its own "
        "timeout, else its rule's); null when it has none. The dashboard shows an older reading "
        "as stale",
    )
    report_on_change: bool = Field(
        default=False,
        description="its device reports on change (a reading when it moved by its deadband), "
        "not every poll: a quiet sensor sends nothing for up to `max_silent_s`",
    )
    max_silent_s: float | None = Field(
        default=None,
        description="the most a device reporting on change stays silent (it sends the reading "
        "again then); null when it reports every poll. The dashboard shows a reading older than "
        "this (and 15 s) as stale when the sensor has no `no_data_s`",
    )
    rate: dict[str, Any] | None = Field(
        default=None, description="rate of rise judged (its own, else its rule's); null: none"
    )
    early_warning: dict[str, Any] | None = Field(
        default=None, description="the early warning by trend (its own, else its rule's)"
    )
    frozen: dict[str, Any] | None = Field(
        default=None, description="the frozen-value check (its own, else its rule's)"
    )
    maintenance: dict[str, Any] | None = Field(
        default=None,
        description="the limit on calibration and manual time (its own, else its rule's): a "
        "`maintenance` alarm (level `overdue`) when its readings say so for `after_s`; null: none",
    )
    calibration_due: dict[str, Any] | None = Field(
        default=None,
        description="the calibration interval (its own, else its rule's): a `calibration_due` "
        "alarm (标校超期, level `calibration_overdue`) at its first reading `every_days` after "
        "its last calibration reading; null: none",
    )
    lock_test: dict[str, Any] | None = Field(
        default=None,
        description="the lock-out test interval of its plan (`verify`; the plan's own, else its "
        "rule's): a `lock_test_overdue` alarm when no passed test is recorded for `every_days` "
        "(POST /api/v1/lock-tests); null: none",
    )
    verify: dict[str, Any] | None = Field(
        default=None,
        description="the protective action checked by feedback sensors of the same tenant",
    )
    suppress_when: list[dict[str, Any]] = Field(
        default_factory=list,
        description="suppression by design: conditions on sensors of the same tenant",
    )
    members: list[str] = Field(
        default_factory=list, description="a voting group: the sensors it counts"
    )
    vote_level: int | None = Field(
        default=None, description="a voting group: the members' level (1 = first above) that counts"
    )
    count_failed: bool | None = Field(
        default=None,
        description="a voting group: a member that cannot measure (sensor fault, no data) counts "
        "as at the level; null for a sensor that is not a group",
    )
    out_of_service: bool = Field(
        default=False,
        description="taken out of service (`POST /sensors/{id}/service`): its readings raise no "
        "alarm until it returns to service",
    )
    out_of_service_by: str | None = Field(
        default=None, description="the key that took it out of service; null when in service"
    )
    out_of_service_reason: str | None = Field(
        default=None, description="why it is out of service; null when in service"
    )
    out_of_service_since: int | None = Field(
        default=None, description="since when (ms since the epoch); null when in service"
    )


class MePublic(_Public):
    name: str = Field(description="the key's name (never the key)")
    role: str
    tenants: list[str] | None = Field(description="the tenants the key sees; null: every tenant")
    expires_ms: int | None = Field(description="when a key made through the API expires")
    alarm_actions: list[str] = Field(
        description="the alarm actions the key's role may take (`acknowledge`, `shelve`, "
        "`unshelve`, `comment`, `disposal`, and `review`: approving or returning an "
        "enterprise's closing, the monitoring centre's alone); empty for a viewer"
    )


class LatestPublic(_Public):
    sensor: str
    ts: int
    value: float | None
    quality: int
    quality_name: str


class PointPublic(_Public):
    """A window's aggregate (of its measurements only)."""

    ts: int
    value: float | None


class MinMaxPublic(_Public):
    """A window's lowest and highest measurement (`aggregate=minmax`)."""

    ts: int
    min: float | None
    max: float | None


class ReadingPointPublic(_Public):
    """A raw reading, with its quality."""

    ts: int
    value: float | None
    quality: int
    quality_name: str


class AlarmEventPublic(_Public):
    id: int
    kind: str
    ts: int
    arrival: int
    level: int
    level_name: str
    tier: str
    value: float | None
    actor: str | None
    comment: str
    isa_state: str


class AlarmPublic(_Public):
    id: int
    tenant: str
    tenant_name: str = Field(
        description="the tenant's (enterprise's) name as configured; '' when it has none"
    )
    site: str
    site_name: str = Field(description="the site's name as configured; '' when it has none")
    device: str
    sensor: str
    rule: str
    side: str
    location: str = Field(
        description="the sensor's location as configured (a vehicle's plate); '' for a device "
        "or gateway"
    )
    device_name: str = Field(
        description="the device's name as configured (`name` of the device; a vehicle's plate "
        "for its alarms); '' when it has none, and for a gateway (the configuration names none)"
    )
    tag: str = Field(
        description="the sensor's placement tag as configured (T0, T1 ... in a coal mine); '' "
        "when it has none, and for a device's or gateway's alarm"
    )
    sensor_kind: str = Field(
        description="the sensor's kind as configured (methane, co, level ...); `device` for a "
        "device's alarm (`device:` sensor), `gateway` for a gateway's; '' for a sensor no longer "
        "configured"
    )
    state: str
    isa_state: str = Field(description="the site's (the enterprise's console, ISA-18.2)")
    acked: bool = Field(description="acknowledged by the enterprise (the site)")
    centre_acked: bool = Field(
        description="acknowledged by the supervising centre (an admin or operator key of every "
        "tenant): its own repeats and escalation steps stop on it, the enterprise's on `acked`"
    )
    shelved_until: int | None
    suppressed: bool
    out_of_service: bool
    disposal: str = Field(
        description="received, verified, disposed, review (closed by an enterprise, waiting for "
        "the monitoring centre's review), closed"
    )
    disposal_due: int | None
    overdue: bool
    level: int
    level_name: str
    tier: str
    action: str
    peak_level: int
    peak_tier: str
    peak_level_name: str | None = Field(
        default=None,
        description="the name of `peak_level`, from the raise or escalation that first reached "
        "it; null when the journal has none",
    )
    peak_value: float | None = Field(
        default=None, description="the value at which the alarm first reached `peak_level`"
    )
    peak_ts: int | None = Field(
        default=None,
        description="when it first reached `peak_level` (event time, ms): the raise's or the "
        "escalation's",
    )
    started_ts: int
    ended_ts: int | None
    raised_at: int
    cleared_at: int | None
    value: float | None
    value_unit: str = Field(
        description="what `value` measures: the sensor's unit for its process alarms; s, m, "
        "km/h or readings for the others (fatigue: s of driving; corridor: m off the route)"
    )
    events: list[AlarmEventPublic]


class VehiclePublic(_Public):
    id: str
    tenant: str
    plate: str
    vehicle_class: str
    speed_sensor: str


class TrackPointPublic(_Public):
    ts: int
    lat: float
    lon: float
    speed_kmh: float
    heading_deg: float
