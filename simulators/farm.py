"""A farm of simulated Modbus devices for a configuration, and the runner of a scenario's modes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from simulators.fleet import SimulatedVehicle, attach_scenario
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.refs import device_ref
from simulators.relay import UplinkRelay
from simulators.timeline import CompiledScenario, ModeChange
from telemetry.errors import ConfigError
from telemetry.registry import Registry

__all__ = ["Farm", "ScenarioRunner", "build_farm"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Farm:
    servers: dict[tuple[str, int], ModbusSimServer]
    devices: dict[str, SimulatedDevice]  # by the device's full name, "tenant/site/device"
    transports: dict[tuple[str, int], str] = field(default_factory=dict)  # "tcp", "rtu-over-tcp"

    async def start(self) -> None:
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()

    def ports(self) -> dict[tuple[str, int], int]:
        """Configured endpoint -> the port actually bound (differs when built with `any_port`)."""
        return {ep: s.port for ep, s in self.servers.items()}


def build_farm(
    registry: Registry,
    scenario: CompiledScenario,
    clock: Callable[[], float],
    *,
    any_port: bool = False,
) -> Farm:
    """One server per configured endpoint, one unit per device; `any_port` binds free ports.

    The server speaks the devices' `modbus.transport`: Modbus TCP for `tcp`, RTU frames over TCP
    for `rtu-over-tcp` (a serial device server: its units share one server, as they share the
    RS-485 line behind it). A device on a serial line (`rtu`) is refused (`ConfigError`, naming
    it): it cannot be served where the gateway looks for it, and serving it as TCP would only
    hide that. So are devices of different transports on one host and port."""
    framing = endpoint_framing(registry)
    by_endpoint: dict[tuple[str, int], list[SimulatedDevice]] = defaultdict(list)
    devices: dict[str, SimulatedDevice] = {}
    for dev in registry.devices.values():
        m = dev.spec.modbus
        ref = device_ref(dev)  # ids are unique within a site only: two tenants' tank1-rtu
        sim = SimulatedDevice(dev.profile, m.unit, scenario.point_signals.get(ref, {}), clock)
        by_endpoint[(m.host, m.port)].append(sim)
        devices[ref] = sim
    servers = {
        ep: ModbusSimServer(
            devs,
            host=ep[0],
            port=0 if any_port else ep[1],
            framer=framer(framing[ep]),
        )
        for ep, devs in by_endpoint.items()
    }
    return Farm(servers, devices, framing)


def framer(transport: str) -> Literal["socket", "rtu"]:
    """The simulator server's framing for a device's `modbus.transport`."""
    return "rtu" if transport == "rtu-over-tcp" else "socket"


def endpoint_framing(registry: Registry) -> dict[tuple[str, int], str]:
    """Each configured endpoint's (host, port) transport. A device on a serial line (`rtu`) is
    refused (`ConfigError`, naming it): it cannot be served where the gateway looks for it, and
    serving it as TCP would only hide that. So are devices of different transports on one host
    and port."""
    serial = [device_ref(d) for d in registry.devices.values() if d.spec.modbus.transport == "rtu"]
    if serial:
        raise ConfigError(
            f"device(s) {', '.join(serial)} have modbus transport 'rtu' (a serial line): the "
            "simulator serves TCP ports only. Simulate them from a copy of the configuration "
            "with `transport: rtu-over-tcp`, a `host` and `port` instead of `serial`, and point "
            "a gateway run on that copy at them"
        )
    framing: dict[tuple[str, int], tuple[str, str]] = {}  # endpoint -> (transport, a device)
    for dev in registry.devices.values():
        m = dev.spec.modbus
        ref = device_ref(dev)
        transport, first = framing.setdefault((m.host, m.port), (m.transport, ref))
        if transport != m.transport:
            raise ConfigError(
                f"{m.host}:{m.port} is given transport {first}'s {transport!r} and {ref}'s "
                f"{m.transport!r}: one port speaks one framing"
            )
    return {ep: t for ep, (t, _) in framing.items()}


@dataclass(slots=True)
class ScenarioRunner:
    """Applies the scenario's fault modes at their scenario times; records when it did.

    On construction it gives the vehicles their detours, noise seeds, modes (`gps_drift`,
    `offline`: a vehicle follows them on the scenario clock, as its fixes are stamped) and (a
    scenario with a `start`) scenario-clock stamps; `epoch_ms` is then the epoch ms of t=0
    (`now_ms`, default the wall clock, resolves a time-of-day start). A gateway's
    `uplink_loss` cuts its relay in `relays` (by gateway id) until the mode ends; without one
    it is only logged."""

    scenario: CompiledScenario
    devices: Mapping[str, SimulatedDevice]  # `Farm.devices`: by "tenant/site/device"
    clock: Callable[[], float]  # scenario seconds
    accel: float = 1.0
    vehicles: Mapping[str, SimulatedVehicle] = field(default_factory=dict)
    relays: Mapping[str, UplinkRelay] = field(default_factory=dict)
    applied: list[tuple[ModeChange, int]] = field(default_factory=list)  # (change, wall ms)
    now_ms: int | None = None
    epoch_ms: int = 0

    def __post_init__(self) -> None:
        now = self.now_ms if self.now_ms is not None else time.time_ns() // 1_000_000
        self.epoch_ms = attach_scenario(self.scenario, list(self.vehicles.values()), now)
        for vehicle in self.vehicles.values():  # a fix knows its own time's mode
            vehicle.modes = tuple(
                (m.t_s, m.mode) for m in self.scenario.modes if m.device == f"vehicle:{vehicle.id}"
            )

    async def run(self, stop: asyncio.Event) -> None:
        for change in self.scenario.modes:
            delay = (change.t_s - self.clock()) / self.accel
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
            self.apply(change)

    def apply(self, change: ModeChange) -> None:
        if change.device.startswith("gateway:"):
            gateway = change.device.removeprefix("gateway:")
            relay = self.relays.get(gateway)
            if relay is None:
                log.warning(
                    "t=%.1fs no relay for gateway %s: %s ignored",
                    change.t_s,
                    gateway,
                    change.mode or "normal",
                )
            elif change.mode == "uplink_loss":
                relay.cut()
            else:
                relay.restore()
            self.applied.append((change, time.time_ns() // 1_000_000))
            return
        if change.device.startswith("vehicle:"):
            # the vehicle has it in its `modes`, in scenario time: its fixes, even those taken
            # late, follow them (setting it now would give it to fixes of before)
            self.applied.append((change, time.time_ns() // 1_000_000))
            return
        device = self.devices[change.device]
        if change.point is None:
            device.online = change.mode != "comm_loss"
        else:
            device.set_mode(change.point, change.mode)
        self.applied.append((change, time.time_ns() // 1_000_000))
        log.info(
            "t=%.1fs %s%s -> %s",
            change.t_s,
            change.device,
            f".{change.point}" if change.point else "",
            change.mode or "normal",
        )
