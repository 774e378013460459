"""Gateway polling throughput on one core: 500 simulated devices x 40 points.

The simulators run in separate processes (so the gateway's core is its own); the gateway polls
every device at --hz, decodes, builds one batch per cycle and encodes it, as in production
(the MQTT uplink is left out: it is measured by the ingest bench). Printed: points/s,
requests/s, p99 of cycle-start lateness (jitter), the gateway process's CPU time per second, and
the same load without coalescing (one request per point) with the ratios.

Run: .venv/bin/python bench/gateway.py [--devices 500] [--points 40] [--hz 1] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import sys
import time
from pathlib import Path

# this file is named like the `gateway` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np

from gateway.bus import ModbusBus
from gateway.poller import DevicePoller
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Noisy, Ramp
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import DeviceProfile, HubConfig
from telemetry.registry import build_registry

UNITS_PER_PORT = 10


def profile(points: int) -> DeviceProfile:
    # 40 points spread over two tables with holes, as in a real register map
    return DeviceProfile.model_validate(
        {
            "name": "bench",
            "points": [
                {
                    "name": f"p{i}",
                    "table": "holding" if i % 2 else "input",
                    "address": (i // 2) * 3,
                    "dtype": "float32" if i % 4 == 1 else "uint16",
                    "scale": 1 if i % 4 == 1 else 0.1,
                }
                for i in range(points)
            ],
        }
    )


def serve(ports: list[int], points: int, ready: mp.Event, stop: mp.Event) -> None:
    async def main() -> None:
        prof = profile(points)
        t0 = time.monotonic()
        servers = []
        for port in ports:
            devs = [
                SimulatedDevice(
                    prof,
                    u,
                    {p.name: Noisy(Ramp(0, 600, 10, 90), 1, seed=u) for p in prof.points},
                    lambda: time.monotonic() - t0,
                )
                for u in range(1, UNITS_PER_PORT + 1)
            ]
            srv = ModbusSimServer(devs, port=port)
            await srv.start()
            servers.append(srv)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for srv in servers:
            await srv.stop()

    asyncio.run(main())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def run(ports: list[int], args: argparse.Namespace, coalesce: bool) -> dict[str, float]:
    prof = profile(args.points)
    devices = []
    for i in range(args.devices):
        port, unit = ports[i // UNITS_PER_PORT], i % UNITS_PER_PORT + 1
        devices.append(
            {
                "id": f"d{i}",
                "profile": "bench",
                "modbus": {"port": port, "unit": unit, "poll_s": 1 / args.hz, "timeout_s": 1.0},
                "sensors": [
                    {"id": f"d{i}-{p.name}", "point": p.name, "kind": "other"} for p in prof.points
                ],
            }
        )
    reg = build_registry(
        HubConfig.model_validate(
            {
                "tenants": [{"id": "t", "sites": [{"id": "s", "devices": devices}]}],
                "device_profiles": [prof.model_dump()],
            }
        )
    )
    points = 0

    async def sink(batch: TelemetryBatch) -> None:
        nonlocal points
        encode(batch)
        points += len(batch)

    buses: dict[tuple[str, str], ModbusBus] = {}
    pollers = []
    for info in reg.devices.values():
        bus = buses.setdefault(info.spec.modbus.endpoint(), ModbusBus(info.spec.modbus))
        pollers.append(DevicePoller(info, sink, gateway="gw", epoch=1, bus=bus, coalesce=coalesce))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
    await asyncio.sleep(2.0)  # warm-up: connections, first cycles
    points, requests0 = 0, sum(b.requests for b in buses.values())
    for p in pollers:
        p.lateness_s.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    got_points, requests = points, sum(b.requests for b in buses.values()) - requests0
    stop.set()
    await asyncio.gather(*tasks)
    for bus in buses.values():
        bus.close()
    lateness = np.concatenate([np.array(p.lateness_s) for p in pollers]) * 1000
    return {
        "points_s": got_points / wall,
        "requests_s": requests / wall,
        "cpu_s": cpu / wall,
        "p99_ms": float(np.percentile(lateness, 99)) if len(lateness) else float("nan"),
        "wanted_s": args.devices * args.points * args.hz,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--sim-processes", type=int, default=2)
    args = ap.parse_args()
    n_ports = -(-args.devices // UNITS_PER_PORT)
    ports = free_ports(n_ports)
    chunks = [ports[i :: args.sim_processes] for i in range(args.sim_processes)]
    stop = mp.Event()
    procs = []
    for chunk in chunks:
        ready = mp.Event()
        proc = mp.Process(target=serve, args=(chunk, args.points, ready, stop), daemon=True)
        proc.start()
        ready.wait(60)
        procs.append(proc)
    try:
        results = {c: asyncio.run(run(ports, args, coalesce=c)) for c in (True, False)}
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
    print(
        f"{args.devices} devices x {args.points} points at {args.hz:g} Hz "
        f"({results[True]['wanted_s']:,.0f} points/s asked), {args.seconds:g} s, "
        f"{Path(__file__).name}"
    )
    for c, name in ((True, "coalesced"), (False, "one request per point (baseline)")):
        r = results[c]
        print(
            f"  {name:34s}: {r['points_s']:10,.0f} points/s  {r['requests_s']:9,.0f} req/s  "
            f"jitter p99 {r['p99_ms']:8.1f} ms  gateway CPU {r['cpu_s'] * 100:5.1f} %"
        )
    a, b = results[True], results[False]
    print(
        f"  ratio baseline/coalesced: requests {b['requests_s'] / max(a['requests_s'], 1):.1f}x"
        f" per second, CPU per point "
        f"{(b['cpu_s'] / max(b['points_s'], 1)) / (a['cpu_s'] / max(a['points_s'], 1)):.1f}x"
    )


if __name__ == "__main__":
    main()
