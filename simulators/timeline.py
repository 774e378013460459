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
```

Compiling a scenario against a registry gives the signal of every point and vehicle speed, the
schedule of fault modes, and the ground truth (what each sensor really measured when), so that a
test can compare the hub's alarms with what the scenario did. Everything is a pure function of
the file and its seed.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
]
_VEHICLE_MODES = ("gps_drift", "offline")


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
    to: float | None = None
    over_s: float | None = Field(default=None, ge=0)
    rate_per_s: float | None = Field(default=None, gt=0)
    mode: Mode | None = None
    for_s: float | None = Field(default=None, gt=0)
    note: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.device is None) == (self.vehicle is None):
            raise ValueError("an event names exactly one of 'device' and 'vehicle'")
        if (self.to is None) == (self.mode is None):
            raise ValueError("an event sets exactly one of 'to' (a value) and 'mode'")
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


class ScenarioSpec(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    duration_s: float = Field(gt=0)
    seed: int = 0
    baseline: dict[str, dict[str, SignalSpec]] = Field(default_factory=dict)
    routes: dict[str, tuple[tuple[float, float], ...]] = Field(default_factory=dict)
    events: tuple[EventSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ModeChange:
    t_s: float
    device: str  # a device id, or "vehicle:<id>"
    point: str | None  # None: the whole device (comm loss) or vehicle
    mode: str | None  # None: back to normal


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    spec: ScenarioSpec
    point_signals: Mapping[str, Mapping[str, Signal]]  # device id -> point -> signal
    vehicle_speeds: Mapping[str, Signal]
    modes: tuple[ModeChange, ...]
    sensors: Mapping[str, tuple[str, str]]  # sensor id -> (device or vehicle id, point or speed)

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


def compile_scenario(spec: ScenarioSpec, registry: Registry) -> CompiledScenario:
    """Resolve a scenario against a configuration; errors name the event."""
    devices = {d.spec.id: d for d in registry.devices.values()}
    vehicles = {v.spec.id: v for v in registry.vehicles.values()}
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
        if ev.device is not None and ev.point is not None:
            names = {p.name for p in devices[ev.device].profile.points}
            if ev.point not in names:
                raise ValueError(f"{where}: device {ev.device!r} has no point {ev.point!r}")
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
        speeds[veh_id] = _with_events(base, mine, seed * 1000 + 900 + k)
        sensors[registry.sensors[veh.speed_sensor].id] = (veh_id, "speed")
    modes: list[ModeChange] = []
    for ev in spec.events:
        if ev.mode is None:
            continue
        owner = ev.device if ev.device is not None else f"vehicle:{ev.vehicle}"
        modes.append(ModeChange(ev.at_s, owner, ev.point, ev.mode))
        if ev.for_s is not None:
            modes.append(ModeChange(ev.at_s + ev.for_s, owner, ev.point, None))
    modes.sort(key=lambda m: m.t_s)
    return CompiledScenario(spec, point_signals, speeds, tuple(modes), sensors)
