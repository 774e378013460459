"""What `--accel` does to a plant scenario, in the configuration's own numbers.

The gateway stamps each reading with the wall clock when it reads it, and the hub judges
readings by those stamps: its on/off delays, rate windows and no-data timeouts, and the
gateway's poll period, last `accel` times as long in scenario time. At 5x a tank's HI held
11 s never passed its 5 s on-delay (25 scenario seconds), and its clear came 40 s late. The
simulator says so at its start (`accel_caveat`); the time stamps stay the gateway's.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulators.refs import device_ref, resolve_device
from simulators.timeline import CompiledScenario
from telemetry.registry import DeviceInfo, Registry, SensorInfo

__all__ = ["accel_caveat", "driven_points"]


def driven_points(
    compiled: CompiledScenario, registry: Registry
) -> list[tuple[DeviceInfo, list[SensorInfo]]]:
    """The devices whose points the scenario drives (an event's or a baseline's `point`), in
    the configuration's order, each with the sensors on those points; names that fit no single
    device are left out (the compile refused them)."""
    devices = {device_ref(d): d for d in registry.devices.values()}
    vehicles = {v.spec.id for v in registry.vehicles.values()}
    named = [(e.device, e.point) for e in compiled.spec.events if e.device and e.point]
    named += [
        (name, point)
        for name, points in compiled.spec.baseline.items()
        if name not in vehicles
        for point in points
    ]
    pairs: set[tuple[str, str]] = set()
    for name, point in named:
        try:
            pairs.add((resolve_device(name, devices), point))
        except ValueError:
            continue
    out: list[tuple[DeviceInfo, list[SensorInfo]]] = []
    for ref, d in devices.items():
        sensors = [
            registry.sensors[i]
            for p, i in zip(d.points, d.sensors, strict=True)
            if (ref, p.name) in pairs
        ]
        if any(r == ref for r, _ in pairs):
            out.append((d, sensors))
    return out


def _longest_wait(sensors: Iterable[SensorInfo]) -> tuple[float, str] | None:
    """The longest on/off delay or rate window of the sensors, and what it is."""
    best: tuple[float, str] | None = None
    for s in sensors:
        found = [(lv.on_delay_s, f"{s.id} {lv.name} on_delay_s") for lv in s.levels]
        found += [(lv.off_delay_s, f"{s.id} {lv.name} off_delay_s") for lv in s.levels]
        if s.rate is not None:
            found.append((s.rate.window_s, f"{s.id} rate window_s"))
        for seconds, what in found:
            if seconds > 0 and (best is None or seconds > best[0]):
                best = (seconds, what)
    return best


def accel_caveat(compiled: CompiledScenario, registry: Registry, accel: float) -> str | None:
    """What playing the scenario at `accel` does to the hub's judgement of the devices it
    drives, with the numbers of the configuration: None at 1x (or slower), or when it drives
    no device."""
    driven = driven_points(compiled, registry)
    if accel <= 1 or not driven:
        return None
    sensors = [s for _, of_device in driven for s in of_device]
    poll, polled = max((d.spec.modbus.poll_s, d.spec.id) for d, _ in driven)
    wait = _longest_wait(sensors)
    text = (
        f"scenario {compiled.spec.name}: played {accel:g}x, its readings keep the gateway's "
        f"wall-clock stamps, by which the hub judges them: its delays, rate windows and no-data "
        f"timeouts last {accel:g}x as long in scenario time; "
    )
    held = poll * accel
    if wait is not None:
        text += (
            f"the longest on/off delay or rate window of the sensors it drives ({wait[1]}: "
            f"{wait[0]:g} s) lasts {wait[0] * accel:g} scenario seconds, "
        )
        held += wait[0] * accel
    text += (
        f"a poll every {poll:g} s ({polled}) is one every {poll * accel:g} scenario seconds: "
        f"levels held shorter than {held:g} scenario seconds may be missed and clears come "
        f"late; compare against an expected timeline at --accel 1"
    )
    return text
