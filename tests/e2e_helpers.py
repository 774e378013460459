"""Building blocks of the end-to-end tests: a mine-face config wired to a simulator port, a
running hub, and a scenario played through the Modbus farm, real gateways and a real hub."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from alerts.statedb import StateDB
from api.auth import hash_key
from api.configadmin import ConfigAdmin
from api.context import AppContext
from api.registrydb import RegistryDB
from gateway.publisher import MqttPublisher
from gateway.runner import Gateway
from gateway.spool import Spool
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load, load_profiles, load_registry
from simulators.farm import ScenarioRunner, build_farm
from simulators.fleet import FleetPublisher, SimulatedVehicle
from simulators.relay import UplinkRelay
from simulators.timeline import CompiledScenario
from telemetry.codec import decode
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.deviceconfig import DeviceProfile
from telemetry.registry import Registry, build_registry, parse_document
from telemetry.ruleconfig import RulePack
from telemetry.topics import TopicLayout

from services import free_port

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def shipped_profiles() -> tuple[list[DeviceProfile], list[RulePack]]:
    """The shipped device profiles and rule packs (frozen), read once a test process: each test
    of the API read and validated the 16 files again, twice (tens of milliseconds each)."""
    return load_profiles(ROOT / "profiles")


def mine_registry(port: int, poll_s: float, extra_yaml: str = "") -> Registry:
    text = f"""
version: 1
tenants:
  - id: north-coal
    name: 北方煤业
    sites:
      - id: face-1301
        name: 1301 综采工作面
        kind: mine
        devices:
          - id: kj-sub-3
            name: KJ 分站 3
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: {port}, unit: 1, poll_s: {poll_s}, timeout_s: 0.3}}
            sensors:
              - {{id: ch4-t0, point: ch4_t0, kind: methane, tag: T0,
                  rule: coal-methane.upper-corner-t0}}
              - {{id: ch4-t1, point: ch4_t1, kind: methane, tag: T1, rule: coal-methane.face-t1}}
              - {{id: ch4-t2, point: ch4_t2, kind: methane, tag: T2, rule: coal-methane.return-t2}}
              - {{id: co, point: co, kind: co, rule: coal-gas.co}}
              - {{id: feed, point: feed, kind: power_feed}}
  - id: acme-chem
    vehicles:
      - {{id: tanker-01, plate: 苏A·D1234, class: hazmat}}
{extra_yaml}
"""
    config = parse_document(text, HubConfig, "e2e.yaml")
    profiles, packs = shipped_profiles()
    return build_registry(config, profiles, packs, "e2e.yaml")


# two tankers of chem-logistics with JT/T 808 terminals: the JT/T 808 gateway's tests
TANKERS = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat, terminal: "13800000002"}
"""


def tanker_registry(tmp_path: Path) -> Registry:
    """The registry of `TANKERS`, read from a file in `tmp_path` as a gateway reads it."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(TANKERS, encoding="utf-8")
    return load_registry(cfg, [ROOT / "profiles"])


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout_s: float, what: str, interval_s: float = 0.1
) -> Any:
    """Poll `probe` until it returns something truthy; fail saying `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params)
    r.raise_for_status()
    return r.json()


@dataclass(frozen=True, slots=True)
class HubAccess:
    """An in-process hub's API on a free port with an operator key: the hubs it makes (a
    restarted one keeps port and key) and a client of their API."""

    key: str = field(default_factory=lambda: "hh_" + secrets.token_urlsafe(16))
    api_port: int = field(default_factory=free_port)

    def hub(self, registry: Registry, data_dir: Path, broker_port: int) -> Hub:
        return Hub(
            registry,
            HubSettings(data_dir=data_dir, broker_port=broker_port, api_port=self.api_port),
            extra_keys=[ApiKeySpec(name="op", sha256=hash_key(self.key), role="operator")],
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {self.key}"},
        )


def coal_uplink(broker_port: int, spool: Spool) -> MqttPublisher:
    """gw1's uplink of north-coal (the mine registry's tenant) over `spool`, retrying fast."""
    return MqttPublisher(
        "127.0.0.1",
        broker_port,
        tenant="north-coal",
        gateway="gw1",
        layout=TopicLayout(),
        spool=spool,
        backoff_max_s=0.5,
    )


class TelemetryWatch:
    """The telemetry batches the broker routed, as a QoS 1 subscriber sees them: device ->
    (epoch, seq) -> readings (a re-send counts once). The gateway keeps no record of what it
    sent (its `published` grew by a record per batch for ever, helper-150): tests watch the
    broker instead. Use as an async context manager, entered before the gateways publish."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.published: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)
        self.last_rx = 0.0
        self._client = aiomqtt.Client(host, port, identifier=f"watch-{secrets.token_hex(4)}")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TelemetryWatch:
        await self._client.__aenter__()
        await self._client.subscribe(f"{TopicLayout().root}/+/+/+/telemetry", qos=1)
        self._task = asyncio.create_task(self._listen())
        return self

    async def _listen(self) -> None:
        async for message in self._client.messages:
            assert isinstance(message.payload, bytes)
            batch = decode(message.payload)
            self.published[batch.device][(batch.epoch, batch.seq)] = len(batch)
            self.last_rx = time.monotonic()

    async def quiet(self, for_s: float = 0.3, timeout_s: float = 10.0) -> None:
        """Wait until nothing came for `for_s` (what the broker had is here)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and time.monotonic() - self.last_rx < for_s:
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.__aexit__(None, None, None)


async def hub_ready(hub: Hub) -> bool:
    """The hub has subscribed to the broker and its API answers."""
    return hub.ingest.ready.is_set() and hub.api_started.is_set()


@contextlib.asynccontextmanager
async def running_hub(hub: Hub) -> AsyncIterator[Hub]:
    """Run a hub for the body of the block: started and ready on entry, stopped cleanly on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        yield hub
    finally:
        stop.set()
        await task


def start_hub_process(
    cfg: Path, broker: int, data: Path, api_port: int, log: Path
) -> subprocess.Popen[bytes]:
    """`hazardhub hub` as a process of its own (to be killed), its output appended to `log`."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "hub", "-c", str(cfg)),
            *("--broker", f"127.0.0.1:{broker}", "--data-dir", str(data)),
            *("--api", f"127.0.0.1:{api_port}"),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


# ---- a scenario played through the hub ------------------------------------------------------


def remapped(config: HubConfig, ports: dict[tuple[str, int], int], poll_s: float) -> HubConfig:
    """The configuration with its Modbus endpoints on the farm's bound ports, polled every
    `poll_s`."""
    data: dict[str, Any] = config.model_dump(by_alias=True)
    for tenant in data["tenants"]:
        for site in tenant["sites"]:
            for dev in site["devices"]:
                m = dev["modbus"]
                m["port"] = ports[(m["host"], m["port"])]
                m["poll_s"] = poll_s
    return HubConfig.model_validate(data)


# the journal's events of the alarms' level changes
_CHANGES = frozenset({"raised", "escalated", "deescalated", "cleared"})


@dataclass(frozen=True, slots=True)
class Played:
    """What a scenario played through the hub left: its alarm events in scenario time."""

    start_wall_ms: int
    accel: float
    # (sensor, side, kind, level name, scenario time of the event, wall ms of its arrival, level)
    # of every level change
    events: list[tuple[str, int, str, str, float, int, int]]
    # (sensor, side, scenario time it started) of every alarm
    alarms: list[tuple[str, int, float]]
    # the telemetry the broker routed (`TelemetryWatch`): device -> (epoch, seq) -> readings
    published: dict[str, dict[tuple[int, int], int]]
    stored: dict[str, list[int]]  # sensor id -> event times (ms) in the hub's store
    outages: dict[str, list[tuple[int, int | None]]]  # gateway -> relay cuts, wall ms
    # (scenario time, scenario seconds) of each stall of the event loop the gateways, the farm
    # and the hub share: a request stamped when sent is served that much later
    stalls: list[tuple[float, float]] = field(default_factory=list)
    # (wall ms, device -> Modbus cycles its gateway's poller had begun) sampled every 10 ms: what
    # the gateways polled, however slowly a loaded machine let them
    cycles: list[tuple[int, dict[str, int]]] = field(default_factory=list)

    def polled(self, device: str, from_ms: int, to_ms: int) -> int:
        """The cycles `device` was polled in between the wall times `from_ms` and `to_ms` (as
        sampled: the last sample at or before each)."""

        def at(ms: int) -> int:
            return max((c[device] for t, c in self.cycles if t <= ms), default=0)

        return at(to_ms) - at(from_ms)

    def first(self, sensor: str, level_name: str) -> float:
        return min(e[4] for e in self.events if e[0] == sensor and e[3] == level_name)

    def scenario_s(self, wall_ms: int) -> float:
        return (wall_ms - self.start_wall_ms) * self.accel / 1000

    def stall(self, t0: float, t1: float) -> float:
        """The longest stall of the loop (scenario seconds) that ended between `t0` and `t1`
        (scenario times) or lasted over them."""
        return max((d for t, d in self.stalls if t0 <= t and t - d <= t1), default=0.0)


async def play(
    compiled: CompiledScenario,
    config: Path,
    broker_port: int,
    data_dir: Path,
    *,
    accel: float,
    poll_s: float,
    relays: bool = False,
    fleet: bool = False,
) -> Played:
    """Play `compiled` against the hub configuration `config` until its `duration_s`: the farm
    serves the scenario, a real gateway per configured gateway polls it and publishes to the
    broker (through an `UplinkRelay` each with `relays`), with `fleet` the vehicles publish their
    positions every `poll_s`, a real hub judges it all; the scenario runner applies the fault
    modes. After the scenario the gateways' spools are drained."""
    loaded = load(config)
    reg0 = loaded.registry()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    start_wall_ms = time.time_ns() // 1_000_000

    def clock() -> float:
        return (loop.time() - t0) * accel

    farm = build_farm(reg0, compiled, clock, any_port=True)
    await farm.start()
    reg = loaded.registry(remapped(loaded.config, farm.ports(), poll_s))
    hub = Hub(
        reg,
        HubSettings(data_dir=data_dir / "hub", broker_port=broker_port, api_port=free_port()),
    )
    hub_stop, edge_stop = asyncio.Event(), asyncio.Event()
    hub_task = asyncio.create_task(hub.run(hub_stop))
    pairs = sorted({(d.tenant, d.spec.gateway) for d in reg.devices.values()})
    uplinks = {g: UplinkRelay("127.0.0.1", broker_port) for _, g in pairs} if relays else {}
    gateways: list[Gateway] = []
    stored: dict[str, list[int]] = {}
    stalls: list[tuple[float, float]] = []
    cycles: list[tuple[int, dict[str, int]]] = []
    watch = TelemetryWatch(broker_port)  # what reached the broker
    await watch.__aenter__()
    try:
        for relay in uplinks.values():
            await relay.start()
        while not hub.ingest.ready.is_set():
            await asyncio.sleep(0.05)
        layout = TopicLayout()
        gateways = [
            Gateway(
                reg,
                tenant=t,
                gateway=g,
                broker_host="127.0.0.1",
                broker_port=uplinks[g].port if g in uplinks else broker_port,
                layout=layout,
                spool_dir=data_dir / "spool",
            )
            for t, g in pairs
        ]
        vehicles = [
            SimulatedVehicle(
                v.tenant,
                v.spec.id,
                ((32.0, 118.8), (32.5, 119.8)),
                compiled.vehicle_speeds[v.spec.id],
            )
            for v in (reg.vehicles.values() if fleet else ())
        ]
        runner = ScenarioRunner(
            compiled, farm.devices, clock, accel, {v.id: v for v in vehicles}, relays=uplinks
        )
        tasks = [asyncio.create_task(g.run(edge_stop)) for g in gateways]
        tasks.append(asyncio.create_task(runner.run(edge_stop)))
        tasks.append(asyncio.create_task(_watch_stalls(edge_stop, clock, accel, stalls)))
        tasks.append(asyncio.create_task(_count_cycles(edge_stop, gateways, cycles)))
        if vehicles:
            publisher = FleetPublisher(
                vehicles,
                host="127.0.0.1",
                port=broker_port,
                layout=layout,
                clock=clock,
                start_wall_ms=start_wall_ms,
                period_s=poll_s,
                accel=accel,
            )
            tasks.append(asyncio.create_task(publisher.run(edge_stop)))
        await asyncio.sleep(max(0.0, compiled.spec.duration_s / accel - (loop.time() - t0)))
        for relay in uplinks.values():
            relay.restore()  # a scenario whose outage outlasts it
        deadline = loop.time() + 20
        while any(g.publisher.pending for g in gateways) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        edge_stop.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.5)
        await watch.quiet()
        for info in reg.sensors:
            rows = await hub.store.history(
                info.index, start_wall_ms - 60_000, time.time_ns() // 1_000_000 + 60_000
            )
            stored[info.id] = [ts for ts, _ in rows]
    finally:
        await watch.__aexit__(None, None, None)
        edge_stop.set()
        hub_stop.set()
        await hub_task
        for relay in uplinks.values():
            await relay.stop()
        await farm.stop()

    def scenario_s(wall_ms: int) -> float:
        return (wall_ms - start_wall_ms) * accel / 1000

    db = StateDB(data_dir / "hub" / "state.db")
    try:
        rows = db.list_alarms(None, limit=1000)
        by_id = db.alarm_events([r.id for r in rows])
        events = [
            (r.sensor, r.side, e.kind, e.level_name, scenario_s(e.ts), e.arrival, e.level)
            for r in rows
            for e in by_id[r.id]
            if e.kind in _CHANGES  # not the system's lines (a protective action confirmed)
        ]
        alarms = [(r.sensor, r.side, scenario_s(r.started_ts)) for r in rows]
    finally:
        db.close()
    return Played(
        start_wall_ms,
        accel,
        sorted(events, key=lambda e: e[4]),
        alarms,
        {dev: dict(p) for dev, p in watch.published.items()},
        stored,
        {g: list(r.outages) for g, r in uplinks.items()},
        stalls,
        cycles,
    )


async def _count_cycles(
    stop: asyncio.Event, gateways: list[Gateway], out: list[tuple[int, dict[str, int]]]
) -> None:
    """Sample every 10 ms how many cycles each device's poller has begun (with the wall time)."""
    pollers = [p for g in gateways for p in g.pollers]
    while not stop.is_set():
        out.append((time.time_ns() // 1_000_000, {p.device.spec.id: p.cycles for p in pollers}))
        await asyncio.sleep(0.01)


async def _watch_stalls(
    stop: asyncio.Event, clock: Callable[[], float], accel: float, out: list[tuple[float, float]]
) -> None:
    """Record each time the shared event loop woke a 10 ms sleep more than 20 ms late: on a
    loaded machine a Modbus request sent (and its reading stamped) before the stall is served by
    the farm after it, its value that much newer than its time stamp."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.01)
        late = loop.time() - before - 0.01
        if late > 0.02:
            out.append((clock(), late * accel))


def live_config(
    registry: Registry, folder: Path, ctx: Callable[[], AppContext]
) -> tuple[RegistryDB, ConfigAdmin]:
    """The registry database and the live configuration as the hub makes them, for an app built
    in a test: a change switches the context's registry (`ctx()` gives it, once built)."""
    profiles, packs = shipped_profiles()

    def build(config: HubConfig) -> Registry:
        return build_registry(config, profiles, packs, "test")

    async def switch(new: Registry, rev: int) -> None:
        ctx().registry = new

    rdb = RegistryDB(folder / "registry.db")
    admin = ConfigAdmin(rdb, build, switch)
    admin.startup(registry, "test")
    return rdb, admin


def interrupt(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop a process if it still runs: SIGINT, then SIGKILL if it has not ended in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
