"""Scenario timelines: what a scenario file (`simulators.scenario_spec`) does over time.

Compiling a scenario against a registry gives the signal of every point and vehicle speed, the
schedule of fault modes, and the ground truth (what each sensor really measured when), so that a
test can compare the hub's alarms with what the scenario did. Everything is a pure function of
the file and its seed. The file's models are re-exported here, where callers import them.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from simulators.quirks import TerminalQuirks, terminal_quirks
from simulators.refs import UnknownDeviceError, device_ref, resolve_device
from simulators.route import Drive
from simulators.scenario_spec import EventSpec, Jt808Spec, Mode, ScenarioSpec, SignalSpec, Version
from simulators.signals import Constant, Diurnal, Drift, Noisy, Piecewise, Signal
from telemetry.fleetconfig import FleetSettings, VehicleClass
from telemetry.registry import DeviceInfo, Registry, SensorInfo, VehicleInfo

__all__ = [
    "DEFAULT_SPEED_NOISE",
    "DEFAULT_SPEED_SHARE",
    "CompiledScenario",
    "EventSpec",
    "Jt808Spec",
    "Mode",
    "ModeChange",
    "ScenarioSpec",
    "SignalSpec",
    "Version",
    "compile_scenario",
    "default_speed",
]


@dataclass(frozen=True, slots=True)
class ModeChange:
    t_s: float
    device: str  # a device's full name "tenant/site/device", "vehicle:<id>" or "gateway:<id>"
    point: str | None  # None: the whole device (comm loss) or vehicle
    mode: str | None  # None: back to normal


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    spec: ScenarioSpec
    point_signals: Mapping[str, Mapping[str, Signal]]  # "tenant/site/device" -> point -> signal
    vehicle_speeds: Mapping[str, Signal]  # the speed driven: a `Drive` per vehicle
    modes: tuple[ModeChange, ...]
    # sensor id -> ("tenant/site/device" or vehicle id, point or "speed"): every measured sensor
    sensors: Mapping[str, tuple[str, str]]
    # vehicle id -> metres off its route, perpendicular (positive: to the right of the route as
    # drawn, first point to last, whichever way the vehicle drives it)
    vehicle_offsets: Mapping[str, Signal] = field(default_factory=dict)
    # vehicle id -> the JT/T 808 version its terminal speaks (`--jt808`): 2013 or 2019
    jt808_versions: Mapping[str, Version] = field(default_factory=dict)
    # vehicle id -> its terminal's alarm bits, clock skew and copies (those with any)
    terminal_quirks: Mapping[str, TerminalQuirks] = field(default_factory=dict)

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


DEFAULT_SPEED_SHARE = 0.8  # a vehicle's default speed: this share of its class's lowest limit
DEFAULT_SPEED_NOISE = 2.0  # km/h either side (deterministic for the seed)


def default_speed(info: SensorInfo, vehicle_class: VehicleClass, fleet: FleetSettings) -> float:
    """The speed (km/h, whole) a vehicle drives when its scenario says none: 80 % of the lowest
    limit its class can meet on a route without posted limits, by day or by night: the fleet's
    `speed_kmh` (off expressways) and `expressway_kmh`, times the class's night factor, and the
    first level above of its speed sensor's per-reading rule. With the defaults, hazmat 48
    (60 km/h off expressways), coaches and charter buses 64 (80 % of 100 at night). It was 60
    for every class: a hazmat truck's limit off expressways, so its noise raised overspeeds."""
    limits = fleet.limits(vehicle_class)
    lowest = min(limits.speed_kmh, limits.expressway_kmh) * fleet.night_factor(vehicle_class)
    highs = [lv.above for lv in info.levels if lv.above is not None]
    lowest = min([lowest, *highs])
    return float(math.floor(DEFAULT_SPEED_SHARE * lowest))


def _default_baseline(info: SensorInfo) -> SignalSpec:
    highs = [lv.above for lv in info.levels if lv.above is not None]
    if info.kind == "power_feed":
        return SignalSpec(constant=1.0)
    # levels below (O2 below 20 %, wind below 0.25 m/s, a tank's LO): a little above the highest
    # of them and its recovery, not 0, which alarmed from the first poll (helper-72)
    lows = [max(lv.below, lv.recover) for lv in info.levels if lv.below is not None]
    floor = 1.05 * max(lows) if lows and max(lows) > 0 else 0.0
    if highs:
        value = 0.3 * highs[0]
        if value <= floor:  # between the lows and the first high, where both are quiet
            value = (floor + highs[0]) / 2
        return SignalSpec(constant=round(value, 3))
    return SignalSpec(constant=round(floor, 3))


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


def _baselines(
    spec: ScenarioSpec, devices: Mapping[str, DeviceInfo], vehicles: Mapping[str, VehicleInfo]
) -> dict[str, dict[str, SignalSpec]]:
    """The scenario's baselines by device full name or vehicle id; a name of no device or
    vehicle, of several devices, or of one already named, and a point not of it, are refused."""
    out: dict[str, dict[str, SignalSpec]] = {}
    for name, points in spec.baseline.items():
        where = f"scenario {spec.name!r}: baseline: "
        if name in vehicles:
            also = sorted(ref for ref, d in devices.items() if d.spec.id == name)
            if also:
                raise ValueError(
                    f"{where}{name!r} is ambiguous: the vehicle and {', '.join(also)}; name "
                    "the device as 'tenant/device' or 'tenant/site/device'"
                )
            key, names = name, {"speed"}
        else:
            try:
                key = resolve_device(name, devices)
            except UnknownDeviceError:
                raise ValueError(f"{where}no device or vehicle {name!r}") from None
            except ValueError as exc:
                raise ValueError(f"{where}{exc}") from None
            names = {p.name for p in devices[key].profile.points}
        if key in out:
            raise ValueError(f"{where}{name!r} names {key!r}, which another entry names too")
        unknown = sorted(set(points) - names)
        if unknown:
            raise ValueError(f"{where}{name!r} has no point {unknown[0]!r}")
        out[key] = points
    return out


def compile_scenario(spec: ScenarioSpec, registry: Registry) -> CompiledScenario:
    """Resolve a scenario against a configuration; errors name the event. A device is named
    `device`, `tenant/device` or `tenant/site/device` (`simulators.refs`), and keyed by its full
    name in what this gives."""
    devices = {device_ref(d): d for d in registry.devices.values()}
    vehicles = {v.spec.id: v for v in registry.vehicles.values()}
    gateways = {d.spec.gateway for d in registry.devices.values()}
    by_point: dict[tuple[str, str], SensorInfo] = {}
    for ref, d in devices.items():
        for point, idx in zip(d.points, d.sensors, strict=True):
            by_point[(ref, point.name)] = registry.sensors[idx]
    named: dict[int, str] = {}  # event index -> the full name of the device it names
    for k, ev in enumerate(spec.events):
        where = f"scenario {spec.name!r}: events.{k}"
        if ev.device is not None:
            try:
                named[k] = resolve_device(ev.device, devices)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if ev.vehicle is not None and ev.vehicle not in vehicles:
            raise ValueError(f"{where}: no vehicle {ev.vehicle!r} in the configuration")
        if ev.gateway is not None and ev.gateway not in gateways:
            raise ValueError(f"{where}: no device of the configuration is behind {ev.gateway!r}")
        if ev.device is not None and ev.point is not None:
            points = {p.name: p for p in devices[named[k]].profile.points}
            if ev.point not in points:
                raise ValueError(f"{where}: device {ev.device!r} has no point {ev.point!r}")
            dtype = points[ev.point].dtype
            if ev.mode == "nan" and dtype not in ("float32", "float64"):
                raise ValueError(
                    f"{where}: mode 'nan' needs a float32 or float64 point; {ev.point!r} is "
                    f"{dtype} (a fault of it: 'line_break', or 'fault' with a status bit)"
                )
    baselines = _baselines(spec, devices, vehicles)
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
            base = baselines.get(dev_id, {}).get(point.name)
            if base is None:
                base = _default_baseline(info) if info is not None else SignalSpec()
            mine = [
                e
                for k, e in enumerate(spec.events)
                if named.get(k) == dev_id and e.point == point.name and e.to is not None
            ]
            signals[point.name] = _with_events(base, mine, seed * 1000 + j)
            if info is not None:
                sensors[info.id] = (dev_id, point.name)
        point_signals[dev_id] = signals
    speeds: dict[str, Signal] = {}
    for k, (veh_id, veh) in enumerate(vehicles.items()):
        base = baselines.get(veh_id, {}).get("speed") or SignalSpec(
            constant=default_speed(
                registry.sensors[veh.speed_sensor], veh.spec.vehicle_class, registry.config.fleet
            ),
            noise=DEFAULT_SPEED_NOISE,
        )
        mine = [e for e in spec.events if e.vehicle == veh_id and e.to is not None]
        signal = _with_events(base, mine, seed * 1000 + 900 + k)
        speeds[veh_id] = Drive(signal, spec.route(veh_id), _speeding(mine))
        sensors[registry.sensors[veh.speed_sensor].id] = (veh_id, "speed")
    modes: list[ModeChange] = []
    for k, ev in enumerate(spec.events):
        if ev.mode is None:
            continue
        if ev.device is not None:
            owner = named[k]
        elif ev.vehicle is not None:
            owner = f"vehicle:{ev.vehicle}"
        else:
            owner = f"gateway:{ev.gateway}"
        modes.append(ModeChange(ev.at_s, owner, ev.point, ev.mode))
        if ev.for_s is not None:
            modes.append(ModeChange(ev.at_s + ev.for_s, owner, ev.point, None))
    modes.sort(key=lambda m: m.t_s)
    offsets = {v: _offset_signal(ds) for v in vehicles if (ds := _detours(spec, v))}
    versions = _jt808_versions(spec, vehicles)
    quirks = terminal_quirks(spec, vehicles)
    return CompiledScenario(
        spec, point_signals, speeds, tuple(modes), sensors, offsets, versions, quirks
    )


def _jt808_versions(spec: ScenarioSpec, vehicles: Mapping[str, VehicleInfo]) -> dict[str, Version]:
    """Each vehicle's JT/T 808 version: the scenario's for it, else its `protocol`; 2019 for a
    terminal number of more than 12 digits (leading zeros aside), which a 2013 header cannot
    carry (one the scenario says speaks 2013 is refused)."""
    out: dict[str, Version] = {}
    for veh_id in spec.jt808.vehicles:
        if veh_id not in vehicles:
            raise ValueError(f"scenario {spec.name!r}: jt808.vehicles: no vehicle {veh_id!r}")
    for veh_id, veh in vehicles.items():
        digits = (veh.spec.terminal or "").lstrip("0")
        said = spec.jt808.vehicles.get(veh_id)
        if len(digits) > 12:
            if said == 2013:
                raise ValueError(
                    f"scenario {spec.name!r}: jt808.vehicles.{veh_id}: its terminal number "
                    f"{veh.spec.terminal} has {len(digits)} digits, a 2013 header 12 at most"
                )
            out[veh_id] = 2019
        else:
            out[veh_id] = said or spec.jt808.protocol
    return out
