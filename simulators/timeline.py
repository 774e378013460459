"""Scenario files: a YAML timeline over the sites and fleet of a hazardhub configuration.

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
  - {at_s: 260, vehicle: tanker-01, to: 95, over_s: 10, ignore_limits: true}
routes:
  tanker-01: [[31.62, 120.33], [31.6325, 120.375], [31.635, 120.384], [31.6375, 120.393]]
speed_limits:                   # km/h, one per segment of the vehicle's route; null: none
  tanker-01: [80, 40, 60]
```

A vehicle drives its speed signal up to the limit of the segment it is on; a speed event with
`ignore_limits: true` makes it speed deliberately (the limits are ignored from that event to the
vehicle's next speed event). The vehicle's speed in the ground truth is the speed it drives.

`start` (optional) is the local time of t=0, ISO 8601 with its UTC offset: a date and time
("2026-03-03T02:50:00+08:00") or a time of day ("02:50:00+08:00": the latest such instant at
which the whole scenario lies in the past). With a `start`, vehicle positions are stamped on the
scenario clock (start + t), however fast the scenario is played; without, with the wall time.

Compiling a scenario against a registry gives the signal of every point and vehicle speed, the
schedule of fault modes, and the ground truth (what each sensor really measured when), so that a
test can compare the hub's alarms with what the scenario did. Everything is a pure function of
the file and its seed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulators.route import Drive, Route, check_limits
from simulators.signals import Constant, Diurnal, Drift, Noisy, Piecewise, Signal
from telemetry.registry import Registry, SensorInfo

__all__ = [
    "CompiledScenario",
    "EventSpec",
    "ModeChange",
    "ScenarioSpec",
    "SignalSpec",
    "compile_scenario",
]

Mode = Literal[
    "line_break",
    "over_range",
    "stuck",
    "calibration",
    "fault",
    "comm_loss",
    "gps_drift",
    "offline",
    "uplink_loss",
]
_VEHICLE_MODES = ("gps_drift", "offline")
_GATEWAY_MODES = ("uplink_loss",)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignalSpec(_Frozen):
    constant: float = 0.0
    noise: float = Field(default=0.0, ge=0)
    drift_per_h: float = 0.0
    diurnal_amplitude: float = 0.0
    peak_hour: float = 14.0


class EventSpec(_Frozen):
    at_s: float = Field(ge=0)
    device: str | None = None
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
    note: str = ""

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
        if sum(x is not None for x in (self.to, self.mode, self.detour_m)) != 1:
            raise ValueError("an event sets exactly one of 'to' (a value), 'mode' and 'detour_m'")
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
    routes: dict[str, tuple[tuple[float, float], ...]] = Field(default_factory=dict)
    # vehicle id -> km/h per segment of its route (None: no limit)
    speed_limits: dict[str, tuple[float | None, ...]] = Field(default_factory=dict)
    events: tuple[EventSpec, ...] = ()

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


@dataclass(frozen=True, slots=True)
class ModeChange:
    t_s: float
    device: str  # a device id, "vehicle:<id>" or "gateway:<id>"
    point: str | None  # None: the whole device (comm loss) or vehicle
    mode: str | None  # None: back to normal


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    spec: ScenarioSpec
    point_signals: Mapping[str, Mapping[str, Signal]]  # device id -> point -> signal
    vehicle_speeds: Mapping[str, Signal]  # the speed driven: a `Drive` per vehicle
    modes: tuple[ModeChange, ...]
    sensors: Mapping[str, tuple[str, str]]  # sensor id -> (device or vehicle id, point or speed)
    # vehicle id -> metres off its route, perpendicular (positive: to the right of travel)
    vehicle_offsets: Mapping[str, Signal] = field(default_factory=dict)

    def drive(self, vehicle: str) -> Drive:
        """How the vehicle moves: the speed it drives and the distance along its route."""
        drive = self.vehicle_speeds[vehicle]
        assert isinstance(drive, Drive)
        return drive

    def offset(self, vehicle: str, t_s: float) -> float:
        """How far the vehicle really is off its route at `t_s` (metres, signed)."""
        signal = self.vehicle_offsets.get(vehicle)
        return 0.0 if signal is None else signal.value_at(t_s)

    def off_route(self, vehicle: str, beyond_m: float) -> tuple[tuple[float, float], ...]:
        """Ground truth of detours: the (from, to) scenario times at which the vehicle is more
        than `beyond_m` off its route (exact: offsets are linear ramps between the detour's
        events)."""
        out: list[tuple[float, float]] = []
        for ev in _detours(self.spec, vehicle):
            assert ev.detour_m is not None and ev.for_s is not None
            depth = abs(ev.detour_m)
            if depth <= beyond_m:
                continue
            ramp = (ev.over_s or 0.0) * beyond_m / depth
            out.append((ev.at_s + ramp, ev.at_s + ev.for_s - ramp))
        return tuple(out)

    def outages(self, gateway: str) -> tuple[tuple[float, float], ...]:
        """Ground truth of uplink losses: the (from, to) scenario times at which the gateway's
        link to the broker is cut."""
        return tuple(
            (e.at_s, e.at_s + (e.for_s or 0.0))
            for e in sorted(self.spec.events, key=lambda e: e.at_s)
            if e.gateway == gateway and e.mode == "uplink_loss"
        )

    def value(self, sensor_id: str, t_s: float) -> float:
        """What the sensor really measured at scenario time `t_s` (before any fault mode)."""
        owner, key = self.sensors[sensor_id]
        if key == "speed":
            return self.vehicle_speeds[owner].value_at(t_s)
        return self.point_signals[owner][key].value_at(t_s)

    def truth(self, step_s: float = 1.0) -> dict[str, list[tuple[float, float]]]:
        """Ground truth: every sensor's value every `step_s` over the scenario."""
        n = int(self.spec.duration_s / step_s) + 1
        return {
            sid: [(round(i * step_s, 6), self.value(sid, i * step_s)) for i in range(n)]
            for sid in self.sensors
        }

    def first_crossing(
        self, sensor_id: str, threshold: float, *, above: bool = True, step_s: float = 0.01
    ) -> float | None:
        """The first scenario time the true value reaches `threshold` (None: never)."""
        t = 0.0
        while t <= self.spec.duration_s:
            v = self.value(sensor_id, t)
            if (v >= threshold) if above else (v <= threshold):
                return t
            t += step_s
        return None


def _default_baseline(info: SensorInfo) -> SignalSpec:
    highs = [lv.above for lv in info.levels if lv.above is not None]
    if info.kind == "speed":
        return SignalSpec(constant=60.0, noise=2.0)
    if info.kind == "power_feed":
        return SignalSpec(constant=1.0)
    return SignalSpec(constant=round(0.3 * highs[0], 3) if highs else 0.0)


def _base_signal(spec: SignalSpec, seed: int) -> Signal:
    signal: Signal = Constant(spec.constant)
    if spec.diurnal_amplitude:
        signal = Diurnal(spec.constant, spec.diurnal_amplitude, spec.peak_hour)
    if spec.drift_per_h:
        signal = Drift(signal, spec.drift_per_h)
    if spec.noise:
        signal = Noisy(signal, spec.noise, seed)
    return signal


def _with_events(base: SignalSpec, events: list[EventSpec], seed: int) -> Signal:
    if not events:
        return _base_signal(base, seed)
    points: list[tuple[float, float]] = [(0.0, base.constant)]
    for ev in sorted(events, key=lambda e: e.at_s):
        assert ev.to is not None
        times = [t for t, _ in points]
        i = bisect.bisect_right(times, ev.at_s)
        if i == len(points):
            v_prev = points[-1][1]
        else:
            (t0, v0), (t1, v1) = points[i - 1], points[i]
            v_prev = v0 + (v1 - v0) * (ev.at_s - t0) / (t1 - t0)
            points = points[:i]
        if ev.rate_per_s is not None:
            duration = abs(ev.to - v_prev) / ev.rate_per_s
        else:
            duration = ev.over_s or 0.0
        start = max(ev.at_s, points[-1][0] + 1e-3)
        points.append((start, v_prev))
        points.append((start + max(duration, 1e-3), ev.to))
    signal: Signal = Piecewise(tuple(points))
    if base.noise:
        signal = Noisy(signal, base.noise, seed)
    return signal


def _speeding(events: list[EventSpec]) -> tuple[tuple[float, float], ...]:
    """The [from, to) windows in which a vehicle ignores its limits: from a speed event with
    `ignore_limits` to its next speed event."""
    ordered = sorted(events, key=lambda e: e.at_s)
    ends = [e.at_s for e in ordered[1:]] + [math.inf]
    return tuple((e.at_s, end) for e, end in zip(ordered, ends, strict=False) if e.ignore_limits)


def _detours(spec: ScenarioSpec, vehicle: str) -> list[EventSpec]:
    return sorted(
        (e for e in spec.events if e.vehicle == vehicle and e.detour_m is not None),
        key=lambda e: e.at_s,
    )


def _offset_signal(detours: list[EventSpec]) -> Signal:
    """0 m, out to `detour_m` over `over_s`, held, back to 0 m by `at_s + for_s`."""
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    for ev in detours:
        assert ev.detour_m is not None and ev.for_s is not None
        ramp = max(ev.over_s or 0.0, 1e-3)
        start, end = ev.at_s, ev.at_s + ev.for_s
        points += [(start, 0.0), (start + ramp, ev.detour_m), (end - ramp, ev.detour_m), (end, 0.0)]
    return Piecewise(tuple(points))


def compile_scenario(spec: ScenarioSpec, registry: Registry) -> CompiledScenario:
    """Resolve a scenario against a configuration; errors name the event."""
    devices = {d.spec.id: d for d in registry.devices.values()}
    vehicles = {v.spec.id: v for v in registry.vehicles.values()}
    gateways = {d.spec.gateway for d in registry.devices.values()}
    by_point: dict[tuple[str, str], SensorInfo] = {}
    for d in devices.values():
        for point, idx in zip(d.points, d.sensors, strict=True):
            by_point[(d.spec.id, point.name)] = registry.sensors[idx]
    for k, ev in enumerate(spec.events):
        where = f"scenario {spec.name!r}: events.{k}"
        if ev.device is not None and ev.device not in devices:
            raise ValueError(f"{where}: no device {ev.device!r} in the configuration")
        if ev.vehicle is not None and ev.vehicle not in vehicles:
            raise ValueError(f"{where}: no vehicle {ev.vehicle!r} in the configuration")
        if ev.gateway is not None and ev.gateway not in gateways:
            raise ValueError(f"{where}: no device of the configuration is behind {ev.gateway!r}")
        if ev.device is not None and ev.point is not None:
            names = {p.name for p in devices[ev.device].profile.points}
            if ev.point not in names:
                raise ValueError(f"{where}: device {ev.device!r} has no point {ev.point!r}")
    for veh_id in spec.speed_limits:
        if veh_id not in vehicles:
            raise ValueError(f"scenario {spec.name!r}: speed_limits: no vehicle {veh_id!r}")
    for veh_id in vehicles:
        ends = [(e.at_s, e.at_s + (e.for_s or 0.0)) for e in _detours(spec, veh_id)]
        for (_, end), (start, _) in itertools.pairwise(ends):
            if start < end:
                raise ValueError(f"scenario {spec.name!r}: detours of {veh_id!r} overlap")
    seed = spec.seed
    point_signals: dict[str, dict[str, Signal]] = {}
    sensors: dict[str, tuple[str, str]] = {}
    for dev_id, dev in devices.items():
        signals: dict[str, Signal] = {}
        for j, point in enumerate(dev.profile.points):
            info = by_point.get((dev_id, point.name))
            base = spec.baseline.get(dev_id, {}).get(point.name)
            if base is None:
                base = _default_baseline(info) if info is not None else SignalSpec()
            mine = [
                e
                for e in spec.events
                if e.device == dev_id and e.point == point.name and e.to is not None
            ]
            signals[point.name] = _with_events(base, mine, seed * 1000 + j)
            if info is not None:
                sensors[info.id] = (dev_id, point.name)
        point_signals[dev_id] = signals
    speeds: dict[str, Signal] = {}
    for k, (veh_id, veh) in enumerate(vehicles.items()):
        base = spec.baseline.get(veh_id, {}).get("speed") or _default_baseline(
            registry.sensors[veh.speed_sensor]
        )
        mine = [e for e in spec.events if e.vehicle == veh_id and e.to is not None]
        signal = _with_events(base, mine, seed * 1000 + 900 + k)
        speeds[veh_id] = Drive(signal, spec.route(veh_id), _speeding(mine))
        sensors[registry.sensors[veh.speed_sensor].id] = (veh_id, "speed")
    modes: list[ModeChange] = []
    for ev in spec.events:
        if ev.mode is None:
            continue
        if ev.device is not None:
            owner = ev.device
        elif ev.vehicle is not None:
            owner = f"vehicle:{ev.vehicle}"
        else:
            owner = f"gateway:{ev.gateway}"
        modes.append(ModeChange(ev.at_s, owner, ev.point, ev.mode))
        if ev.for_s is not None:
            modes.append(ModeChange(ev.at_s + ev.for_s, owner, ev.point, None))
    modes.sort(key=lambda m: m.t_s)
    offsets = {v: _offset_signal(ds) for v in vehicles if (ds := _detours(spec, v))}
    return CompiledScenario(spec, point_signals, speeds, tuple(modes), sensors, offsets)
