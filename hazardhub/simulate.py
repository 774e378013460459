"""`hazardhub simulate`: Modbus device farms, GPS fleets, scenarios and load, as processes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import threading
from pathlib import Path

import yaml

from hazardhub.cliargs import add_broker_tls, address, broker_tls, hostport
from hazardhub.settings import load, read_text
from simulators.accel import accel_caveat
from simulators.farm import ScenarioRunner, build_farm
from simulators.fleet import FleetPublisher, Jt808Fleet, SimulatedVehicle, terminal_phones
from simulators.fleetchoice import choice_line, corridors, route_of, scenario_vehicles
from simulators.fleetstate import fleet_tenants, keep_positions, load_starts
from simulators.load import LoadGenerator, config_yaml
from simulators.relay import UplinkRelay
from simulators.timeline import CompiledScenario, ScenarioSpec, compile_scenario
from telemetry.brokertls import BrokerTls
from telemetry.clock import wall_ms
from telemetry.errors import ConfigError
from telemetry.registry import Registry, parse_document
from telemetry.topics import TopicLayout

__all__ = ["add_parser", "run"]

log = logging.getLogger("hazardhub.simulate")


_USER_HELP = (
    "MQTT user for a broker with logins (a tenant's user from `hazardhub mqtt-credentials`); "
    "the password is read from $HAZARDHUB_MQTT_PASSWORD"
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("simulate", help="simulated devices, fleets, scenarios and load")
    ss = s.add_subparsers(dest="what", required=True)
    for name, text in (
        ("modbus", "serve the configuration's Modbus devices on their configured endpoints"),
        ("fleet", "drive the configuration's vehicles, publishing positions over MQTT"),
        ("scenario", "run a scenario file over the Modbus farm and the fleet"),
    ):
        p = ss.add_parser(name, help=text)
        p.add_argument("-c", "--config", type=Path, required=True)
        if name == "scenario":
            p.add_argument("scenario_file", type=Path)
        else:
            p.add_argument("--scenario", dest="scenario_file", type=Path, default=None)
        p.add_argument("--accel", type=float, default=1.0, help="scenario seconds per second")
        p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
        p.add_argument("--record", type=Path, default=None, help="write the ground truth (JSON)")
        p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
        if name == "scenario":
            p.add_argument(
                "--uplink-relay",
                action="append",
                default=[],
                metavar="GATEWAY=PORT",
                help="relay PORT to --broker for the gateway GATEWAY, cut by its uplink_loss "
                "events (point that gateway's --broker at 127.0.0.1:PORT)",
            )
            which = p.add_mutually_exclusive_group()
            which.add_argument(
                "--all-vehicles",
                action="store_true",
                help="drive every vehicle of the configuration (default: those the scenario "
                "names, none for a scenario that names none)",
            )
            which.add_argument(
                "--no-fleet", action="store_true", help="drive no vehicle, even those it names"
            )
        if name != "modbus":
            p.add_argument(
                "--tenant",
                action="append",
                default=[],
                metavar="TENANT",
                help="drive this tenant's vehicles only (repeatable; default: every tenant's)",
            )
        if name == "fleet":
            p.add_argument(
                "--resume",
                type=Path,
                default=None,
                metavar="FILE",
                help="start each vehicle where the last run with this FILE left it (a restart "
                "from the routes' starts is a position jump: a GPS drift alarm per vehicle); "
                "where they are is kept there, every 5 s and at the stop",
            )
        if name != "modbus":
            p.add_argument("--broker", type=address(1883), default="127.0.0.1:1883")
            p.add_argument("--broker-user", default=None, help=_USER_HELP)
            add_broker_tls(p)
            p.add_argument("--period", type=float, default=1.0, help="seconds between positions")
            p.add_argument(
                "--jt808",
                type=address(6808),
                default=None,
                metavar="HOST:PORT",
                help="report as JT/T 808 terminals to this platform instead of MQTT",
            )
    lp = ss.add_parser("load", help="synthetic gateways publishing telemetry at a given rate")
    lp.add_argument("--broker", type=address(1883), default="127.0.0.1:1883")
    lp.add_argument("--broker-user", default=None, help=_USER_HELP)
    lp.add_argument("--rate", type=float, default=20_000, help="readings per second")
    lp.add_argument("--devices", type=int, default=100)
    lp.add_argument("--batch", type=int, default=100, help="readings per message")
    lp.add_argument("--seconds", type=float, default=30)
    lp.add_argument(
        "--write-config",
        type=Path,
        default=None,
        help="write the matching hub configuration and exit",
    )


def _hostport(text: str, default_port: int = 1883) -> tuple[str, int]:
    """HOST:PORT as the parser checked it (`hazardhub.cliargs.address`): the broker's, by
    default."""
    return hostport(text, default_port)


def load_scenario(path: Path | None, seed: int | None) -> ScenarioSpec:
    if path is None:
        spec = ScenarioSpec(name="steady", duration_s=10 * 365 * 86400.0)
    else:
        spec = parse_document(read_text(path), ScenarioSpec, str(path))
    return spec if seed is None else spec.model_copy(update={"seed": seed})


def _compile(spec: ScenarioSpec, registry: Registry) -> CompiledScenario:
    try:
        return compile_scenario(spec, registry)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def write_record(path: Path, compiled: CompiledScenario, start_wall_ms: int, accel: float) -> None:
    """The ground truth: scenario time -> value per sensor (a vehicle's speed is the one it
    drives, within its route's limits), the fault-mode schedule and the vehicles' limits."""
    step = max(0.1, min(1.0, compiled.spec.duration_s / 2000))
    doc = {
        "scenario": compiled.spec.name,
        "seed": compiled.spec.seed,
        "start_wall_ms": start_wall_ms,
        "accel": accel,
        "duration_s": compiled.spec.duration_s,
        "modes": [
            {"t_s": m.t_s, "device": m.device, "point": m.point, "mode": m.mode}
            for m in compiled.modes
        ],
        "truth": compiled.truth(step) if compiled.spec.duration_s < 1e6 else {},
        # per vehicle: its route's limits by segment and when it ignores them (null: to the end)
        "speed_limits": {
            vehicle: {
                "limits_kmh": list(compiled.spec.speed_limits.get(vehicle, ())),
                "speeding": [
                    [a, b if math.isfinite(b) else None] for a, b in compiled.drive(vehicle).free
                ],
            }
            for vehicle in compiled.vehicle_speeds
        },
    }
    path.write_text(json.dumps(doc))


async def _run_sim(args: argparse.Namespace, stop: asyncio.Event, tls: BrokerTls | None) -> int:
    loaded = load(args.config)
    registry = loaded.registry()
    along = corridors(loaded.config.fleet)
    compiled = _compile(load_scenario(args.scenario_file, args.seed), registry)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    start_wall_ms = wall_ms()
    accel = float(args.accel)

    def clock() -> float:
        return (loop.time() - t0) * accel

    caveat = accel_caveat(compiled, registry, accel) if args.what != "fleet" else None
    if caveat is not None:  # the hub's delays, windows and the polls, `accel` times as long
        log.warning("%s", caveat)
        print(f"warning: {caveat}", flush=True)
    if args.record:
        write_record(args.record, compiled, start_wall_ms, accel)
    tasks: list[asyncio.Task[None]] = []
    farm = None
    vehicles: list[SimulatedVehicle] = []
    if args.what in ("modbus", "scenario"):
        farm = build_farm(registry, compiled, clock)
        await farm.start()
        for host, port in farm.servers:
            units = sorted(
                d.spec.modbus.unit
                for d in registry.devices.values()
                if (d.spec.modbus.host, d.spec.modbus.port) == (host, port)
            )
            framing = "" if farm.transports[(host, port)] == "tcp" else " rtu-over-tcp"
            print(f"modbus{framing} {host}:{port} units {units}", flush=True)
    if args.what in ("fleet", "scenario"):
        host, port = _hostport(args.broker)
        user = None if args.jt808 else args.broker_user
        tenants = fleet_tenants(registry, getattr(args, "tenant", []))
        wanted = (  # `simulate scenario`: those it names (None: every one)
            scenario_vehicles(compiled, registry, every=args.all_vehicles, none=args.no_fleet)
            if args.what == "scenario"
            else None
        )
        infos = list(registry.vehicles.values())
        phones = terminal_phones([v.spec.terminal for v in infos])  # of all: they stay put
        # (info, phone, route) of the vehicles driven; a route is the k-th of all, as without
        # a filter
        chosen = [
            (v, phone, route_of(compiled, v, k, len(infos), along))
            for k, (v, phone) in enumerate(zip(infos, phones, strict=True))
            # a tenant's login publishes its own vehicles only (the broker drops the others'
            # in silence, acknowledged)
            if (user is None or v.tenant == user)
            and (tenants is None or v.tenant in tenants)
            and (wanted is None or v.spec.id in wanted)
        ]
        resume = getattr(args, "resume", None)
        starts = (
            load_starts(resume, {f"{v.tenant}/{v.spec.id}": r for v, _, r in chosen})
            if resume is not None
            else {}
        )
        vehicles = [
            SimulatedVehicle(
                v.tenant,
                v.spec.id,
                route,
                compiled.vehicle_speeds[v.spec.id],
                start_m=starts.get(f"{v.tenant}/{v.spec.id}", 0.0),
            )
            for v, _, route in chosen
        ]
        if user is not None and any(v.tenant != user for v in infos):
            print(f"fleet: only tenant {user}'s vehicles (its login's)", flush=True)
        if tenants is not None:
            print(f"fleet: only tenant(s) {', '.join(sorted(tenants))}", flush=True)
        if args.what == "scenario":
            said = choice_line(wanted, len(infos), none=args.no_fleet)
            if said is not None:
                print(said, flush=True)
        if resume is not None:
            print(
                f"fleet: {len(starts)} of {len(vehicles)} vehicles resume where {resume} left them",
                flush=True,
            )
            tasks.append(
                asyncio.create_task(keep_positions(resume, vehicles, stop), name="fleet-state")
            )
        if vehicles and accel > 1 and compiled.spec.start is None:
            # wall-clock stamps while the vehicles drive `accel` times as far: every fix an
            # implied speed `accel` times the true one, a GPS drift episode per vehicle that
            # does not end (an alarm per fix before drift episodes: helper-139, 157 in 30 s)
            log.warning(
                "fleet: scenario %s has no start: its positions keep wall-clock times while "
                "played %gx, so the hub sees %gx the speeds (gps_drift): give it a `start` "
                "(the scenario clock) or play it at --accel 1",
                compiled.spec.name,
                accel,
                accel,
            )
        if args.jt808:
            jhost, jport = _hostport(args.jt808, 6808)
            jt = Jt808Fleet(
                [
                    (sim, phone, v.spec.plate)
                    for sim, (v, phone, _) in zip(vehicles, chosen, strict=True)
                ],
                host=jhost,
                port=jport,
                clock=clock,
                start_wall_ms=start_wall_ms,
                period_s=args.period,
                accel=accel,
                end_s=compiled.spec.duration_s,
            )
            tasks.append(asyncio.create_task(jt.run(stop), name="fleet-jt808"))
            print(f"fleet: {len(vehicles)} JT/T 808 terminals -> {jhost}:{jport}", flush=True)
        elif not vehicles:  # nothing to send: no connection (it ended in a traceback, helper-126)
            print("fleet: no vehicles to send", flush=True)
        else:
            fleet = FleetPublisher(
                vehicles,
                host=host,
                port=port,
                layout=TopicLayout(),
                clock=clock,
                start_wall_ms=start_wall_ms,
                period_s=args.period,
                accel=accel,
                end_s=compiled.spec.duration_s,
                username=args.broker_user,
                password=os.environ.get("HAZARDHUB_MQTT_PASSWORD") if args.broker_user else None,
                tls=tls,
            )
            tasks.append(asyncio.create_task(fleet.run(stop), name="fleet"))
            print(f"fleet: {len(vehicles)} vehicles -> mqtt {host}:{port}", flush=True)
    relays: dict[str, UplinkRelay] = {}
    for item in getattr(args, "uplink_relay", []):
        gateway, _, relay_port = item.partition("=")
        bhost, bport = _hostport(args.broker)
        relay = UplinkRelay(bhost, bport, port=int(relay_port))
        await relay.start()
        relays[gateway] = relay
        print(f"uplink relay: {gateway} 127.0.0.1:{relay.port} -> {bhost}:{bport}", flush=True)
    runner = ScenarioRunner(
        compiled,
        farm.devices if farm else {},
        clock,
        accel,
        {v.id: v for v in vehicles},
        relays=relays,
    )
    tasks.append(asyncio.create_task(runner.run(stop), name="scenario-modes"))
    duration = args.duration
    if duration is None and args.scenario_file is not None:
        duration = compiled.spec.duration_s / accel
    try:
        if duration is not None and math.isfinite(duration):
            try:  # from the scenario clock's start, not from the end of the setting up
                left = max(0.0, duration - (loop.time() - t0))
                await asyncio.wait_for(stop.wait(), timeout=left)
            except TimeoutError:
                stop.set()
        else:
            await stop.wait()
        await asyncio.gather(*tasks)
    finally:
        for relay in relays.values():
            await relay.stop()
        if farm is not None:
            await farm.stop()
    return 0


def _run_load(args: argparse.Namespace) -> int:
    if args.write_config:
        args.write_config.write_text(config_yaml(args.devices, args.batch))
        print(f"wrote {args.write_config}: tenant 'load', {args.devices} devices")
        return 0
    host, port = _hostport(args.broker)
    gen = LoadGenerator(
        host,
        port,
        rate=args.rate,
        devices=args.devices,
        batch=args.batch,
        username=args.broker_user,
        password=os.environ.get("HAZARDHUB_MQTT_PASSWORD") if args.broker_user else None,
    )
    report = gen.run(args.seconds, threading.Event())
    print(
        yaml.safe_dump(
            {
                "seconds": round(report.seconds, 2),
                "messages": report.messages,
                "readings": report.readings,
                "readings_per_s": round(report.rate),
                "per_second": report.per_second,
            },
            sort_keys=False,
        )
    )
    return 0


def run(args: argparse.Namespace, runner: object) -> int:
    """Entry from the CLI; `runner` runs a coroutine factory with signal handling."""
    if args.what == "load":
        return _run_load(args)
    run_async = runner  # hazardhub.cli._run
    assert callable(run_async)
    tls = None if args.what == "modbus" else broker_tls(args)  # its files checked before a start
    try:
        result = run_async(lambda stop: _run_sim(args, stop, tls))
    except OSError as exc:  # a farm's port taken (another simulator still running): one line
        if not str(exc).startswith("cannot listen on"):
            raise
        hint = ": is another simulator still running?" if "in use" in str(exc) else ""
        print(f"simulate: {exc}{hint}", file=sys.stderr)
        return 2
    assert isinstance(result, int)
    return result
