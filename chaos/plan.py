"""What a chaos run does: the site configuration, the scenario the simulated devices play, and the
fault schedule (short for CI, full for `make chaos`). Times are scenario seconds: 0 is the start
of the Modbus simulator, whose clock drives the scenario.

The scenario crosses the methane alarm (1.0 %) and power-cut (1.5 %) levels of the coal-methane
rule pack while the faults are on: T1 reaches 1.0 % while the hub is dead and falls back through
1.5 % and 1.0 % while the gateway's link is cut, T0 rises through 1.0 % late in the cut. The face
power feed is cut within 2 s of T1's 1.5 % crossing, so no 'power cut failed' alarm is due.

The mine's fleet (two hazmat tankers, four charter buses) reports a position a second each. The
tanker `tanker-01` must keep to its approved route (a corridor 250 m each side): it turns off it
while the hub is dead and comes back while the broker is away; it drives at 70 km/h (its limit is
60) for long enough to raise the fleet's overspeed (10 s) while influxd is dead. The fleet's
limits take no account of the night, so the run's alarms do not depend on the time of day."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FULL",
    "POSITION_PERIOD_S",
    "SHORT",
    "VEHICLES",
    "Fault",
    "FaultKind",
    "Plan",
    "hub_config",
    "point_sensors",
    "scenario_yaml",
]

FaultKind = Literal["gateway", "hub", "influxd", "mosquitto", "link"]
TENANT, SITE = "north-coal", "face-1301"
DEVICES = ("kj-sub-3", "kj-sub-4")
POLL_S = 0.25
POSITION_PERIOD_S = 1.0  # each vehicle's recorder
# (point, sensor suffix, kind, extra YAML) of each device's sensors
_SENSORS = (
    ("ch4_t0", "ch4-t0", "methane", "tag: T0, rule: coal-methane.upper-corner-t0"),
    ("ch4_t1", "ch4-t1", "methane", "tag: T1, rule: coal-methane.face-t1"),
    ("ch4_t2", "ch4-t2", "methane", "tag: T2, rule: coal-methane.return-t2"),
    ("co", "co", "co", "rule: coal-gas.co"),
    ("feed", "feed", "power_feed", ""),
)
# (vehicle, class, plate, route, speed km/h): the mine's fleet; tanker-01's route is its corridor
_ROUTE = ((37.70, 112.50), (37.75, 112.60), (37.80, 112.72))
_FLEET = (
    ("tanker-01", "hazmat", "晋K·W0101", _ROUTE, 50),
    ("tanker-02", "hazmat", "晋K·W0102", ((37.60, 112.40), (37.68, 112.55)), 45),
    ("bus-03", "charter", "晋K·C0303", ((37.72, 112.45), (37.85, 112.70)), 80),
    ("bus-04", "charter", "晋K·C0304", ((37.74, 112.45), (37.87, 112.70)), 75),
    ("bus-05", "charter", "晋K·C0305", ((37.76, 112.45), (37.89, 112.70)), 70),
    ("bus-06", "charter", "晋K·C0306", ((37.78, 112.45), (37.91, 112.70)), 85),
)
VEHICLES = tuple(v for v, *_ in _FLEET)


@dataclass(frozen=True, slots=True)
class Fault:
    """`kind` at scenario time `at_s`: SIGKILL (gateway, hub, influxd) and a restart after
    `down_s`; a mosquitto restart (SIGTERM, start again); or the link cut: the broker stopped for
    `down_s`, so that the gateway spools and the hub waits."""

    kind: FaultKind
    at_s: float
    down_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    faults: tuple[Fault, ...]
    events: tuple[str, ...]  # scenario events, YAML flow mappings
    end_s: float  # the gateways stop here


SHORT = Plan(
    "short",
    (
        Fault("gateway", 8),
        Fault("hub", 20, 4),
        Fault("influxd", 32, 6),
        Fault("mosquitto", 45),
        Fault("link", 52, 15),
    ),
    (
        "{at_s: 15, device: kj-sub-3, point: ch4_t1, to: 1.8, rate_per_s: 0.1}",  # 1.0 % at 22 s
        "{at_s: 27.5, device: kj-sub-3, point: feed, to: 0, over_s: 0}",  # 1.5 % at 27 s
        "{at_s: 53, device: kj-sub-3, point: ch4_t1, to: 0.4, over_s: 10}",  # 1.5 %: 55 s, 1.0: 59
        "{at_s: 62, device: kj-sub-3, point: feed, to: 1, over_s: 0}",
        "{at_s: 58, device: kj-sub-3, point: ch4_t0, to: 1.2, over_s: 10}",  # 1.0 % at 66 s
        "{at_s: 72, device: kj-sub-3, point: ch4_t0, to: 0.3, over_s: 10}",  # < 1.0 % at 74 s
        # tanker-01: 250 m off its route from 21.75 s (hub dead), back at 53.25 s (link cut)
        "{at_s: 3, vehicle: tanker-01, detour_m: 400, for_s: 69, over_s: 30}",
        "{at_s: 23, vehicle: tanker-01, to: 70, over_s: 2}",  # > 60 km/h from 25 s: raise at 35
        "{at_s: 41, vehicle: tanker-01, to: 50, over_s: 2}",  # 60 km/h at 42 s: cleared
    ),
    82,
)

FULL = Plan(
    "full",
    (
        Fault("gateway", 20),
        Fault("hub", 60, 10),
        Fault("influxd", 100, 20),
        Fault("mosquitto", 140),
        Fault("link", 170, 60),
        Fault("gateway", 190),  # mid-cut, with batches in its spool
        Fault("hub", 236, 5),
        Fault("influxd", 262, 10),
    ),
    (
        "{at_s: 58, device: kj-sub-3, point: ch4_t1, to: 1.8, rate_per_s: 0.1}",  # 1.0 % at 65 s
        "{at_s: 70.5, device: kj-sub-3, point: feed, to: 0, over_s: 0}",  # 1.5 % at 70 s
        "{at_s: 175, device: kj-sub-3, point: ch4_t1, to: 0.4, over_s: 20}",  # 1.5: 179, 1.0: 186
        "{at_s: 200, device: kj-sub-3, point: feed, to: 1, over_s: 0}",
        "{at_s: 205, device: kj-sub-3, point: ch4_t0, to: 1.2, over_s: 20}",  # 1.0 % at 221 s
        "{at_s: 235, device: kj-sub-3, point: ch4_t0, to: 0.3, over_s: 10}",  # < 1.0 % at 237 s
        "{at_s: 255, device: kj-sub-4, point: ch4_t2, to: 1.3, over_s: 10}",  # 1.0 % at 262 s
        "{at_s: 275, device: kj-sub-4, point: ch4_t2, to: 0.3, over_s: 10}",  # < 1.0 % at 278 s
        # tanker-01: off its route from 63.75 s (hub dead), back at 199.25 s (link cut)
        "{at_s: 45, vehicle: tanker-01, detour_m: 400, for_s: 173, over_s: 30}",
        "{at_s: 93, vehicle: tanker-01, to: 70, over_s: 2}",  # > 60 from 95 s: raise at 105
        "{at_s: 125, vehicle: tanker-01, to: 50, over_s: 2}",  # cleared at 126 s
        "{at_s: 175, vehicle: tanker-01, to: 70, over_s: 2}",  # raise at 187 s (link cut)
        "{at_s: 250, vehicle: tanker-01, to: 50, over_s: 2}",  # cleared at 251 s, after a hub kill
    ),
    295,
)


def sensor_id(device: str, suffix: str) -> str:
    return f"{device.removeprefix('kj-')}-{suffix}"


def point_sensors() -> dict[tuple[str, str], str]:
    """(device, point) -> sensor id: which published readings the hub stores."""
    return {(d, p): sensor_id(d, s) for d in DEVICES for p, s, _, _ in _SENSORS}


def _fleet_yaml() -> str:
    vehicles = "".join(
        f"      - {{id: {v}, plate: {plate}, class: {cls}}}\n" for v, cls, plate, *_ in _FLEET
    )
    line = ", ".join(f"[{lat}, {lon}]" for lat, lon in _ROUTE)
    return (
        "    vehicles:\n" + vehicles + "fleet:\n"
        "  hazmat: {speed_kmh: 60, expressway_kmh: 80, night_speed_factor: 1.0}\n"
        "  charter: {speed_kmh: 100, expressway_kmh: 100, night_speed_factor: 1.0}\n"
        "  geofences:\n"
        f"    - {{kind: corridor, id: tanker-01-route, vehicles: [{TENANT}/tanker-01], "
        f"polyline: [{line}], buffer_m: 250}}\n"
    )


def hub_config(modbus_port: int, admin_key: str) -> str:
    """A coal mine: one tenant, the 1301 face, two monitoring substations on one farm, and the
    mine's fleet with the tanker's corridor."""
    devices = []
    for unit, dev in enumerate(DEVICES, start=1):
        sensors = "\n".join(
            f"              - {{id: {sensor_id(dev, s)}, point: {p}, kind: {k}"
            + (f", {extra}" if extra else "")
            + (
                f", verify: {{sensor: {sensor_id(dev, 'feed')}, expect_below: 0.5, within_s: 2}}"
                if p == "ch4_t1"
                else ""
            )
            + "}"
            for p, s, k, extra in _SENSORS
        )
        devices.append(
            f"          - id: {dev}\n"
            "            profile: coal-substation\n"
            "            gateway: gw1\n"
            f"            modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: {unit}, "
            f"poll_s: {POLL_S}, timeout_s: 0.5}}\n"
            "            sensors:\n" + sensors
        )
    digest = hashlib.sha256(admin_key.encode()).hexdigest()
    return (
        "version: 1\n"
        f"api_keys:\n  - {{name: chaos, role: admin, sha256: {digest}}}\n"
        "tenants:\n"
        f"  - id: {TENANT}\n"
        "    sites:\n"
        f"      - id: {SITE}\n"
        "        kind: mine\n"
        "        devices:\n" + "\n".join(devices) + "\n" + _fleet_yaml()
    )


def scenario_yaml(plan: Plan) -> str:
    return (
        f"name: chaos-{plan.name}\n"
        "description: methane at the face crossing alarm and power-cut levels under faults\n"
        f"duration_s: {plan.end_s + 600}\n"
        "seed: 10\n"
        "baseline:\n"
        + "".join(f"  {v}: {{speed: {{constant: {kmh}}}}}\n" for v, _, _, _, kmh in _FLEET)
        + "routes:\n"
        + "".join(
            f"  {v}: [{', '.join(f'[{a}, {b}]' for a, b in route)}]\n"
            for v, _, _, route, _ in _FLEET
        )
        + "events:\n"
        + "".join(f"  - {e}\n" for e in plan.events)
    )
