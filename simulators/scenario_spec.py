"""The scenario file: a YAML timeline over the sites and fleet of a hazardhub configuration.

```yaml
name: tank2-leak
duration_s: 300
seed: 7
baseline:                       # optional; default: 30 % of a sensor's first level above
  gas-panel: {lel3: {constant: 2, noise: 0.5}}
events:
  - {at_s: 60, device: gas-panel, point: lel3, to: 40, over_s: 90}
  - {at_s: 120, device: kj-sub-3, point: ch4_t1, to: 1.8, rate_per_s: 0.05}
  - {at_s: 150, device: tank1-rtu, mode: comm_loss, for_s: 30}
  - {at_s: 170, device: gas-panel, point: lel1, mode: line_break, for_s: 20}
  - {at_s: 200, vehicle: tanker-01, to: 95, over_s: 10}
  - {at_s: 220, vehicle: tanker-01, detour_m: 3000, for_s: 300, over_s: 120}
  - {at_s: 240, gateway: gw1, mode: uplink_loss, for_s: 30}
  - {at_s: 250, vehicle: tanker-01, mode: link_loss, for_s: 60}   # its own link: a blind area
  - {at_s: 260, vehicle: tanker-01, to: 95, over_s: 10, ignore_limits: true}
  - {at_s: 270, vehicle: tanker-01, alarm: emergency, for_s: 30}  # a terminal alarm bit
  - {at_s: 280, vehicle: tanker-01, safety: adas_forward_collision}  # a 苏标 ADAS event
  - {at_s: 290, vehicle: coach-07, safety: dsm_fatigue, level: 2, for_s: 60}  # a DSM alarm
routes:
  tanker-01: [[31.62, 120.33], [31.6325, 120.375], [31.635, 120.384], [31.6375, 120.393]]
speed_limits:                   # km/h, one per segment of the vehicle's route; null: none
  tanker-01: [80, 40, 60]
jt808:                          # with --jt808: the terminals' protocol, 2013 (default) or 2019
  protocol: 2013                # every terminal's
  vehicles: {coach-07: 2019}    # one vehicle's
clock_skew_s: {coach-07: 45}    # the vehicle's clock, this far ahead (negative: behind)
duplicates: {tanker-01: 0.25}   # this share of its position messages sent twice (or one number:
                                # every vehicle's)
package_body: 300               # JT/T 808 bodies over this many bytes go in sub-packages (1023)
lose_packages: {tanker-01: 0.2} # this share of its sub-packages lost on purpose (or one number)
resend_packages: same           # sub-packages asked for again (0x8003): same serials, or new
```

A vehicle's `alarm` event sets a JT/T 808 alarm bit (0x0200's alarm word, `alarm_flags`) from
`at_s` for `for_s` (without it, to the end): named as `telemetry.jt808.Alarm` in lower case
(`emergency` bit 0, `overspeed` 1, `fatigue` 2, ...), or its bit number 0-31. Its events may
overlap: the word holds every bit set at the time.

A vehicle's `safety` event is an active-safety alarm of a 苏标 terminal (`adas_*`, `dsm_*`:
`telemetry.activesafety`): with `for_s`, its start (flag 1) at `at_s` and its end (flag 2)
`for_s` later; without, an event without duration (flag 0); at `level` 1 (default) or 2. The
vehicle's next position carries it (an ADAS 0x64 or DSM 0x65 block over JT/T 808, an
`active_safety` event over MQTT) at that position's time.

A device (an event's `device`, a `baseline` key) is named `device`, `tenant/device` or
`tenant/site/device`: device ids are unique within a site only, and a name that fits several
devices is refused when the scenario is compiled (`simulators.refs`).

A vehicle drives its speed signal up to the limit of the segment it is on; a speed event with
`ignore_limits: true` makes it speed deliberately (the limits are ignored from that event to the
vehicle's next speed event). The vehicle's speed in the ground truth is the speed it drives.

`start` (optional) is the local time of t=0, ISO 8601 with its UTC offset: a date and time
("2026-03-03T02:50:00+08:00") or a time of day ("02:50:00+08:00": the latest such instant at
which the whole scenario lies in the past). With a `start`, vehicle positions are stamped on the
scenario clock (start + t), however fast the scenario is played; without, with the wall time.

These are its frozen, self-validating models: a file that loads is well formed on its own; what
it names is checked against a configuration when it is compiled (`simulators.timeline`). Split
from `simulators.timeline` (the file's shape here, its meaning there).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simulators.route import Route, check_limits
from telemetry.activesafety import SAFETY_KINDS
from telemetry.jt808 import Alarm

__all__ = [
    "ALARM_BITS",
    "EventSpec",
    "Jt808Spec",
    "Mode",
    "ScenarioSpec",
    "SignalSpec",
    "Version",
    "alarm_bit",
]

Mode = Literal[
    "line_break",
    "nan",
    "over_range",
    "stuck",
    "calibration",
    "fault",
    "comm_loss",
    "gps_drift",
    "offline",
    "link_loss",
    "uplink_loss",
]
Version = Literal[2013, 2019]  # JT/T 808-2013 or JT/T 808-2019: the header and bodies spoken
_VEHICLE_MODES = ("gps_drift", "offline", "link_loss")
_GATEWAY_MODES = ("uplink_loss",)
# the alarm word's bits by name (JT/T 808's table, `Alarm`): emergency 0, overspeed 1, fatigue 2
ALARM_BITS: dict[str, int] = {
    a.name.lower(): a.value.bit_length() - 1
    for a in Alarm
    if a.name is not None and a.value.bit_count() == 1
}


def alarm_bit(alarm: str | int) -> int:
    """The bit number of an `alarm` (a name of `ALARM_BITS`, or a number 0-31)."""
    if isinstance(alarm, int):
        if not 0 <= alarm <= 31:
            raise ValueError(f"alarm bit {alarm} is not in 0-31")
        return alarm
    if alarm not in ALARM_BITS:
        raise ValueError(f"alarm {alarm!r} is none of {', '.join(ALARM_BITS)} (or a bit 0-31)")
    return ALARM_BITS[alarm]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Finite(BaseModel):
    """A model whose numbers are finite: a NaN or an infinity (`.nan`, `.inf` in YAML) is
    refused at load with its place in the file. A NaN `to` or `constant` was taken, and the
    register it could not be written to answered Modbus exception 4 at the gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# a finite number (see `_Finite`), in a model that has other numbers
Finite = Annotated[float, Field(allow_inf_nan=False)]


class SignalSpec(_Finite):
    constant: float = 0.0
    noise: float = Field(default=0.0, ge=0)
    drift_per_h: float = 0.0
    diurnal_amplitude: float = 0.0
    peak_hour: float = 14.0


class Jt808Spec(_Frozen):
    """The protocol the vehicles' JT/T 808 terminals speak (`--jt808`): `protocol` every
    terminal's, `vehicles` one vehicle's (by id) over it. A terminal whose number has more than
    12 digits speaks 2019 (a 2013 header holds 12)."""

    protocol: Version = 2013
    vehicles: dict[str, Version] = Field(default_factory=dict)


class EventSpec(_Finite):
    at_s: float = Field(ge=0)
    device: str | None = None  # `device`, `tenant/device` or `tenant/site/device`
    point: str | None = None
    vehicle: str | None = None
    gateway: str | None = None  # a gateway id of the configuration (DeviceSpec.gateway)
    to: float | None = None
    over_s: float | None = Field(default=None, ge=0)
    rate_per_s: float | None = Field(default=None, gt=0)
    mode: Mode | None = None
    detour_m: float | None = Field(default=None, ge=-100_000, le=100_000)
    for_s: float | None = Field(default=None, gt=0)
    ignore_limits: bool = False  # a vehicle's speed event: speeding on purpose, limits ignored
    alarm: str | int | None = None  # a vehicle's JT/T 808 alarm bit, by name or number
    safety: str | None = None  # a vehicle's 苏标 active-safety alarm: adas_..., dsm_...
    level: Literal[1, 2] = 1  # ... its level
    note: str = ""

    @field_validator("safety")
    @classmethod
    def _safety(cls, value: str | None) -> str | None:
        if value is not None and value not in SAFETY_KINDS.values():
            raise ValueError(f"safety {value!r} is none of {', '.join(SAFETY_KINDS.values())}")
        return value

    @field_validator("alarm")
    @classmethod
    def _alarm(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            alarm_bit(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if sum(x is not None for x in (self.device, self.vehicle, self.gateway)) != 1:
            raise ValueError("an event names exactly one of 'device', 'vehicle' and 'gateway'")
        if self.ignore_limits and (self.vehicle is None or self.to is None):
            raise ValueError("'ignore_limits' goes on a vehicle's speed event ('vehicle', 'to')")
        if self.gateway is not None or self.mode in _GATEWAY_MODES:
            if self.gateway is None or self.mode not in _GATEWAY_MODES:
                raise ValueError(f"a gateway event sets 'mode' to one of {_GATEWAY_MODES}")
            if self.for_s is None:
                raise ValueError("a gateway's uplink loss lasts 'for_s'")
            if any(x is not None for x in (self.point, self.to, self.detour_m)):
                raise ValueError("a gateway event has no 'point', 'to' or 'detour_m'")
            return self
        what = (self.to, self.mode, self.detour_m, self.alarm, self.safety)
        if sum(x is not None for x in what) != 1:
            raise ValueError(
                "an event sets exactly one of 'to' (a value), 'mode', 'detour_m', 'alarm' and "
                "'safety'"
            )
        if self.alarm is not None or self.safety is not None:
            if self.vehicle is None:
                raise ValueError("an alarm bit, an active-safety alarm is a vehicle's terminal's")
            if any(x is not None for x in (self.point, self.over_s, self.rate_per_s)):
                raise ValueError("an alarm event has no 'point', 'over_s' or 'rate_per_s'")
            return self
        if self.detour_m is not None:
            if self.vehicle is None:
                raise ValueError("a detour applies to a vehicle")
            if self.for_s is None:
                raise ValueError("a detour lasts 'for_s'")
            if self.rate_per_s is not None:
                raise ValueError("a detour ramps 'over_s', not 'rate_per_s'")
            if 2 * (self.over_s or 0.0) > self.for_s:
                raise ValueError("a detour's 'over_s' (out, and again back) exceeds half 'for_s'")
            return self
        if self.to is not None and self.device is not None and self.point is None:
            raise ValueError("a value event on a device names its 'point'")
        if self.mode in _VEHICLE_MODES:
            if self.vehicle is None:
                raise ValueError(f"mode {self.mode!r} applies to a vehicle")
            return self
        if self.mode is not None and self.vehicle is not None:
            raise ValueError(f"mode {self.mode!r} applies to devices; vehicles: {_VEHICLE_MODES}")
        if self.mode == "comm_loss" and self.point is not None:
            raise ValueError("comm_loss applies to a whole device, not a point")
        if self.mode not in (None, "comm_loss") and self.point is None:
            raise ValueError(f"mode {self.mode!r} needs a 'point'")
        if self.over_s is not None and self.rate_per_s is not None:
            raise ValueError("give 'over_s' or 'rate_per_s', not both")
        return self


def _parse_start(text: str) -> dt.datetime | dt.time:
    """An ISO 8601 date-time or time of day; either must carry its UTC offset."""
    parsed: dt.datetime | dt.time
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = dt.time.fromisoformat(text)  # raises ValueError for neither
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"start {text!r} needs its UTC offset, e.g. '02:50:00+08:00'")
    return parsed


class ScenarioSpec(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    start: str | None = None  # local time of t=0 with its offset; None: now
    duration_s: float = Field(gt=0)
    seed: int = 0
    baseline: dict[str, dict[str, SignalSpec]] = Field(default_factory=dict)
    routes: dict[str, tuple[tuple[Finite, Finite], ...]] = Field(default_factory=dict)
    # vehicle id -> km/h per segment of its route (None: no limit)
    speed_limits: dict[str, tuple[float | None, ...]] = Field(default_factory=dict)
    events: tuple[EventSpec, ...] = ()
    jt808: Jt808Spec = Field(default_factory=Jt808Spec)
    # vehicle id -> seconds its terminal's clock is off (ahead; negative: behind)
    clock_skew_s: dict[str, Finite] = Field(default_factory=dict)
    # the share of position messages sent twice: every vehicle's, or per vehicle id
    duplicates: float | dict[str, float] = 0.0
    # JT/T 808 sub-packages: the most body bytes in one, the share lost on purpose (every
    # vehicle's, or per vehicle id), and the serials of those sent again on the platform's ask
    package_body: int = Field(default=1023, ge=1, le=1023)
    lose_packages: float | dict[str, float] = 0.0
    resend_packages: Literal["same", "new"] = "same"

    @field_validator("duplicates", "lose_packages")
    @classmethod
    def _shares(cls, value: float | dict[str, float], info: ValidationInfo) -> object:
        for share in value.values() if isinstance(value, dict) else (value,):
            if not 0.0 <= share <= 1.0:  # (NaN too)
                raise ValueError(f"{info.field_name}: {share} is not a share from 0 to 1")
        return value

    def named_vehicles(self) -> set[str]:
        """The ids the scenario names as vehicles (an event's `vehicle`, its routes, speed
        limits, clock skews, per-vehicle shares and JT/T 808 versions) and its baseline keys
        (devices too: the caller keeps the vehicles)."""
        named = {e.vehicle for e in self.events if e.vehicle is not None}
        named |= set(self.baseline) | set(self.routes) | set(self.speed_limits)
        named |= set(self.clock_skew_s) | set(self.jt808.vehicles)
        for shares in (self.duplicates, self.lose_packages):
            if isinstance(shares, dict):
                named |= set(shares)
        return named

    def duplicate_share(self, vehicle: str) -> float:
        """The share of the vehicle's position messages sent twice."""
        if isinstance(self.duplicates, dict):
            return self.duplicates.get(vehicle, 0.0)
        return self.duplicates

    def loss_share(self, vehicle: str) -> float:
        """The share of the vehicle's sub-packages lost on purpose."""
        if isinstance(self.lose_packages, dict):
            return self.lose_packages.get(vehicle, 0.0)
        return self.lose_packages

    @model_validator(mode="after")
    def _limits(self) -> Self:
        for vehicle, limits in self.speed_limits.items():
            route = self.routes.get(vehicle)
            if route is None:
                raise ValueError(f"speed_limits.{vehicle}: the vehicle has no route in 'routes'")
            try:
                check_limits(len(route), limits)
            except ValueError as exc:
                raise ValueError(f"speed_limits.{vehicle}: {exc}") from None
        return self

    def route(self, vehicle: str) -> Route | None:
        """The vehicle's route with its speed limits (None: no route in the scenario)."""
        points = self.routes.get(vehicle)
        if not points:
            return None
        return Route(points, self.speed_limits.get(vehicle, ()))

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_start(value)
        return value

    def start_ms(self, now_ms: int) -> int:
        """The epoch ms of t=0: `start`, or `now_ms` without one. A time of day resolves to the
        latest instant at which the scenario ends no later than `now_ms` (a replayed past)."""
        if self.start is None:
            return now_ms
        parsed = _parse_start(self.start)
        if isinstance(parsed, dt.datetime):
            return round(parsed.timestamp() * 1000)
        tz = parsed.tzinfo
        assert tz is not None
        today = dt.datetime.fromtimestamp(now_ms / 1000, tz).date()
        candidate = dt.datetime.combine(today, parsed.replace(tzinfo=None), tzinfo=tz)
        end_limit = (now_ms - self.duration_s * 1000) / 1000
        while candidate.timestamp() > end_limit:
            candidate -= dt.timedelta(days=1)
        return round(candidate.timestamp() * 1000)
