"""What a chaos run does: the site configuration, the scenario the simulated devices play, and the
fault schedule (short for CI, full for `make chaos`). Times are scenario seconds: 0 is the start
of the Modbus simulator, whose clock drives the scenario.

The scenario crosses the methane alarm (1.0 %) and power-cut (1.5 %) levels of the coal-methane
rule pack while the faults are on: T1 reaches 1.0 % while the hub is dead and falls back through
1.5 % and 1.0 % while the gateway's link is cut, T0 rises through 1.0 % late in the cut. The face
power feed is cut within 2 s of T1's 1.5 % crossing, so no 'power cut failed' alarm is due."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FULL",
    "SHORT",
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
# (point, sensor suffix, kind, extra YAML) of each device's sensors
_SENSORS = (
    ("ch4_t0", "ch4-t0", "methane", "tag: T0, rule: coal-methane.upper-corner-t0"),
    ("ch4_t1", "ch4-t1", "methane", "tag: T1, rule: coal-methane.face-t1"),
    ("ch4_t2", "ch4-t2", "methane", "tag: T2, rule: coal-methane.return-t2"),
    ("co", "co", "co", "rule: coal-gas.co"),
    ("feed", "feed", "power_feed", ""),
)


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
    ),
    295,
)


def sensor_id(device: str, suffix: str) -> str:
    return f"{device.removeprefix('kj-')}-{suffix}"


def point_sensors() -> dict[tuple[str, str], str]:
    """(device, point) -> sensor id: which published readings the hub stores."""
    return {(d, p): sensor_id(d, s) for d in DEVICES for p, s, _, _ in _SENSORS}


def hub_config(modbus_port: int, admin_key: str) -> str:
    """A coal mine: one tenant, the 1301 face, two monitoring substations on one farm."""
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
        "        devices:\n" + "\n".join(devices) + "\n"
    )


def scenario_yaml(plan: Plan) -> str:
    return (
        f"name: chaos-{plan.name}\n"
        "description: methane at the face crossing alarm and power-cut levels under faults\n"
        f"duration_s: {plan.end_s + 600}\n"
        "seed: 10\n"
        "events:\n" + "".join(f"  - {e}\n" for e in plan.events)
    )
