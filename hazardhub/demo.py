"""`hazardhub demo`: the whole path in one process, on embedded defaults.

Embedded MQTT broker (amqtt), Modbus TCP simulators for the demo devices, the gateway polling them,
simulated GPS recorders, the hub (ingest, alert core, embedded SQLite store) and the API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from amqtt.broker import Broker

from api.auth import hash_key
from gateway.runner import Gateway
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import Loaded, load
from simulators.farm import endpoint_framing, framer
from simulators.fleet import FleetPublisher, SimulatedVehicle
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.refs import device_ref
from simulators.scenario import DEMO_ROUTES, demo_point_signals, demo_vehicle_speeds
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.clock import wall_ms
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["DemoOptions", "run_demo", "simulated_devices"]

log = logging.getLogger("hazardhub.demo")

_DEMO_SENSOR = "face1301-ch4-t1"  # the demo's own configuration has it
_STEADY_S = 10 * 365 * 86400.0  # the steady scenario of a configuration not the demo's


@dataclass(frozen=True, slots=True)
class DemoOptions:
    config: Path
    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    broker_port: int = 0  # 0: 1883 if free, else any free port
    keep_data: bool = False


def free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def _api_key(data_dir: Path) -> str:
    """The demo's admin key: made once, kept in the data folder readable by its owner only."""
    path = data_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    key = "hh_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def _remap_ports(config: HubConfig, ports: dict[tuple[str, int], int]) -> HubConfig:
    data: dict[str, Any] = config.model_dump(by_alias=True)
    for tenant in data["tenants"]:
        for site in tenant["sites"]:
            for dev in site["devices"]:
                m = dev["modbus"]
                endpoint = (m["host"], m["port"])
                if endpoint in ports:
                    m["host"], m["port"] = "127.0.0.1", ports[endpoint]
    return HubConfig.model_validate(data)


def simulated_devices(
    registry: Registry, clock: Callable[[], float]
) -> dict[tuple[str, int], list[SimulatedDevice]]:
    """The simulated devices per configured (host, port), each device one unit id: the demo's
    own devices play its story, any other device its points' steady starting values, as
    `hazardhub simulate modbus` gives them (a configuration of one's own read all zeros)."""
    signals = demo_point_signals()
    steady = compile_scenario(ScenarioSpec(name="steady", duration_s=_STEADY_S), registry)
    by_endpoint: dict[tuple[str, int], list[SimulatedDevice]] = defaultdict(list)
    for dev in registry.devices.values():
        m = dev.spec.modbus
        plays = signals.get(dev.spec.id) or steady.point_signals.get(device_ref(dev), {})
        by_endpoint[(m.host, m.port)].append(SimulatedDevice(dev.profile, m.unit, plays, clock))
    return by_endpoint


async def _start_broker(port: int) -> Broker:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    return broker


def empty_stores(data_dir: Path) -> None:
    """What a demo run without `--keep-data` starts without: the stores, the spools, the
    configuration revisions made through the API, the analytics state (a vehicle's last fix of
    the run before, minutes and kilometres away, read as a jump: a drift alarm at every start)
    and the batch numbers seen. The API key stays (a page logged in goes on working)."""
    names = [
        "timeseries.db",
        "state.db",
        "state-outbox.db",
        "registry.db",
        *(f"spool/{p.name}" for p in (data_dir / "spool").glob("*.db")),
    ]
    for name in names:
        for suffix in ("", "-wal", "-shm"):
            (data_dir / (name + suffix)).unlink(missing_ok=True)
    for name in ("analytics-state.npz", "ingest-seqs.jsonl"):
        (data_dir / name).unlink(missing_ok=True)


async def run_demo(
    opts: DemoOptions,
    stop: asyncio.Event,
    *,
    loaded: Loaded | None = None,
    registry: Registry | None = None,
) -> int:
    """Run the demo until `stop`. `loaded` and `registry`: the configuration of `opts.config`
    as the caller read and checked it (the CLI, before the hub is imported), else read here."""
    if loaded is None:
        loaded = load(opts.config)
    registry0 = registry if registry is not None else loaded.registry()
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    if not opts.keep_data:
        empty_stores(opts.data_dir)
    key = _api_key(opts.data_dir)

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    start_wall_ms = wall_ms()

    def clock() -> float:
        return loop.time() - t0

    framing = endpoint_framing(registry0)  # a serial-line device refused, as by `simulate`
    by_endpoint = simulated_devices(registry0, clock)
    # on the configured ports when they can be bound (the configuration then runs as written,
    # so that changes made through the API are taken up again by `--keep-data`), else on any.
    # Bound, not probed: a port in TIME_WAIT after the last run looked taken to a probe
    sims: dict[tuple[str, int], ModbusSimServer] = {}
    for ep, devs in by_endpoint.items():
        framed = framer(framing[ep])  # RTU frames for a serial device server's units
        sim = ModbusSimServer(devs, port=ep[1] if ep[0] == "127.0.0.1" else 0, framer=framed)
        try:
            await sim.start()
        except OSError:
            sim = ModbusSimServer(devs, port=0, framer=framed)
            await sim.start()
        sims[ep] = sim
    moved = {ep: s.port for ep, s in sims.items() if ep != ("127.0.0.1", s.port)}
    for (host, port), new_port in moved.items():
        if host != "127.0.0.1":  # simulated here on any port, by design: nothing was taken
            continue
        log.warning(
            "simulator port moved: %s:%d is taken, its devices are simulated on 127.0.0.1:%d; "
            "the configuration runs with that port, so changes made through the API in an "
            "earlier run are not taken up by --keep-data this time",
            host,
            port,
            new_port,
        )
    registry = loaded.registry(_remap_ports(loaded.config, moved)) if moved else registry0
    broker_port = free_port(opts.broker_port or 1883)
    broker = await _start_broker(broker_port)
    layout = TopicLayout()
    hub = Hub(
        registry,
        HubSettings(
            data_dir=opts.data_dir,
            broker_port=broker_port,
            api_host=opts.api_host,
            api_port=opts.api_port,
        ),
        extra_keys=[ApiKeySpec(name="demo-admin", sha256=hash_key(key), role="admin")],
        build=loaded.registry,
        config_source=f"{loaded.path} (demo)",
    )
    pairs = sorted({(d.tenant, d.spec.gateway) for d in registry.devices.values()})
    gateways = [
        Gateway(
            registry,
            tenant=t,
            gateway=g,
            broker_host="127.0.0.1",
            broker_port=broker_port,
            layout=layout,
            spool_dir=opts.data_dir / "spool",
        )
        for t, g in pairs
    ]
    for gw in gateways:  # amqtt does not answer an MQTT 5 connect with a last will: 3.1.1 at
        gw.publisher.protocol = aiomqtt.ProtocolVersion.V311  # once, not after a 3 s wait
    speeds = demo_vehicle_speeds()
    fleet = FleetPublisher(
        [
            SimulatedVehicle(v.tenant, v.spec.id, DEMO_ROUTES[v.spec.id], speeds[v.spec.id])
            for v in registry.vehicles.values()
            if v.spec.id in speeds
        ],
        host="127.0.0.1",
        port=broker_port,
        layout=layout,
        clock=clock,
        start_wall_ms=start_wall_ms,
    )
    edge_stop = asyncio.Event()
    hub_stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            hub_task = tg.create_task(hub.run(hub_stop), name="hub")
            await _wait_ready(hub, stop)
            edge = [
                tg.create_task(g.run(edge_stop), name=f"gateway-{g.tenant}-{g.gateway}")
                for g in gateways
            ]
            edge.append(tg.create_task(fleet.run(edge_stop), name="fleet"))
            if not stop.is_set():
                _banner(opts, broker_port, key, registry)
            await stop.wait()
            log.info("stopping: draining gateways, flushing the hub")
            edge_stop.set()
            await asyncio.gather(*edge)
            await asyncio.sleep(0.3)  # let the hub take what the gateways just sent
            hub_stop.set()
            await hub_task
    finally:
        for sim in sims.values():
            await sim.stop()
        await broker.shutdown()
    log.info("demo stopped cleanly")
    return 0


async def _wait_ready(hub: Hub, stop: asyncio.Event) -> None:
    """Until the hub is subscribed and its API serves, or `stop` is set first.

    Every wait is a task of its own, cancelled and awaited here: a gather cancelled by a stop
    before the hub was subscribed kept a CancelledError nobody retrieved, and asyncio printed
    its traceback into the demo's log (a Ctrl-C in the first second of a run)."""
    waits = [
        asyncio.ensure_future(hub.ingest.ready.wait()),
        asyncio.ensure_future(hub.api_started.wait()),
    ]
    stopped = asyncio.ensure_future(stop.wait())
    try:
        pending = set(waits)
        while pending and not stopped.done():
            done, _ = await asyncio.wait({*pending, stopped}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        for fut in (*waits, stopped):
            fut.cancel()
        await asyncio.gather(*waits, stopped, return_exceptions=True)


def _banner(opts: DemoOptions, broker_port: int, key: str, registry: Registry) -> None:
    host = f"[{opts.api_host}]" if ":" in opts.api_host else opts.api_host  # IPv6 in brackets
    base = f"http://{host}:{opts.api_port}"
    story = registry.sensor(_DEMO_SENSOR) is not None
    if story:
        sensor = _DEMO_SENSOR
        what = """In the first minute the face methane passes 1.0 % (alarm) and
1.5 % (power cut), then falls back; the hazmat tanker drives at 90 km/h (limit 80)."""
    else:  # a configuration of one's own: its points hold their starting values
        sensor = min((s.id for s in registry.sensors), default="<sensor>")
        what = f"""Your configuration ({opts.config}): its devices are simulated
at their points' steady starting values; to play events on them, see docs/simulators.md
(`hazardhub simulate scenario`)."""
    print(
        f"""
hazardhub demo is running: {len(registry.sensors)} sensors, {len(registry.devices)} Modbus devices,
{len(registry.vehicles)} vehicles. {what}

  dashboard    {base}/   (log in with the API key in {opts.data_dir}/api-key)
  API docs     {base}/docs
  alarms       curl -H "Authorization: Bearer $(cat {opts.data_dir}/api-key)" {base}/api/v1/alarms
  sensors      {base}/api/v1/sensors   latest: {base}/api/v1/sensors/{sensor}/latest
  MQTT broker  127.0.0.1:{broker_port}  (mosquitto_sub -p {broker_port} -t 'hazardhub/v1/#' -v)
  API key      stored in {opts.data_dir}/api-key (admin role; demo only)

Ctrl-C stops everything.
""",
        flush=True,
    )
    del key
