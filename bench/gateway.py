"""Gateway polling throughput on one core: 500 simulated devices x 40 points.

The simulators run in separate processes (so the gateway's core is its own); the gateway polls
every device at --hz, decodes, builds one batch per cycle and encodes it, as in production
(the MQTT uplink is left out: it is measured by the ingest bench). Printed: points/s,
requests/s, p99 of cycle-start lateness (jitter), the gateway process's own CPU time per second
(user + system, from getrusage of this process only: the simulators are child processes and not
counted), the points per second that one core would carry at that cost, and the same load without
coalescing (one request per point) with the ratios. On loopback the kernel's TCP work for both
ends of a request is charged to whichever process sends, so the system share is a little high.
The simulators (pymodbus servers) are slower than the gateway: on a busy machine they may not
keep up with the asked load, which shows as points/s below the asked figure; the per-core figure
stays the cost measure.

Run: .venv/bin/python bench/gateway.py [--devices 500] [--points 40] [--hz 1] [--seconds 20]
         [--servers pymodbus|lean] [--no-spread]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import struct
import sys
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

# this file is named like the `gateway` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np

from gateway.bus import ModbusBus
from gateway.modbus.codec import (
    decode_read_request,
    encode_mbap,
    encode_read_response,
    parse_mbap,
)
from gateway.poller import DevicePoller
from gateway.runner import spread_phase
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


def serve(ports: list[int], points: int, ready: MpEvent, stop: MpEvent) -> None:
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


class _LeanServer(asyncio.Protocol):
    """A Modbus TCP server built from the gateway's codec, for `--servers lean`: it answers every
    read with registers that change each second, at a small fraction of pymodbus's cost, so
    that on a busy machine the asked load reaches the gateway. (The default, pymodbus
    simulators, are independent of our codec; the tests hold the codec to them.)"""

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buf, pos, out = self._buf + data, 0, []
        while True:
            frame, used = parse_mbap(buf, pos)
            if frame is None:
                break
            pos += used
            function, address, count = decode_read_request(frame.pdu)
            tick = int(time.monotonic())
            if function in (1, 2):
                data_ = tuple((address + i + tick) % 2 == 0 for i in range(count))
                pdu = encode_read_response(function, data_)
            else:
                regs = [(address + i + tick) & 0x3FFF for i in range(count)]
                pdu = encode_read_response(function, struct.pack(f">{count}H", *regs))
            out.append(encode_mbap(frame.tid, frame.unit, pdu))
        self._buf = buf[pos:]
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


def serve_lean(ports: list[int], ready: MpEvent, stop: MpEvent) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(_LeanServer, "127.0.0.1", port) for port in ports]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for srv in servers:
            srv.close()

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
    for i, info in enumerate(reg.devices.values()):
        bus = buses.setdefault(info.spec.modbus.endpoint(), ModbusBus(info.spec.modbus))
        # as the gateway does: first cycles spread over the period, not all in one instant
        phase = spread_phase(i, len(reg.devices), info.spec.modbus.poll_s) if args.spread else 0
        pollers.append(
            DevicePoller(
                info, sink, gateway="gw", epoch=1, bus=bus, coalesce=coalesce, phase_s=phase
            )
        )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
    await asyncio.sleep(2.0)  # warm-up: connections, first cycles
    points, requests0 = 0, sum(b.requests for b in buses.values())
    timeouts0 = sum(b.timeouts for b in buses.values())
    # every device has the same plan: points read per answered request (1 without coalescing)
    per_request = sum(len(r.points) for r in pollers[0].requests) / len(pollers[0].requests)
    for p in pollers:
        p.lateness_s.clear()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.sleep(args.seconds)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    cpu = user + system
    got_points, requests = points, sum(b.requests for b in buses.values()) - requests0
    answered = requests - (sum(b.timeouts for b in buses.values()) - timeouts0)
    stop.set()
    await asyncio.gather(*tasks)
    for bus in buses.values():
        bus.close()
    lateness = np.concatenate([np.array(p.lateness_s) for p in pollers]) * 1000
    return {
        "points_s": got_points / wall,
        "read_s": answered * per_request / wall,
        "requests_s": requests / wall,
        "cpu_s": cpu / wall,
        "sys_s": system / wall,
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
    ap.add_argument(
        "--servers",
        choices=("pymodbus", "lean"),
        default="pymodbus",
        help="pymodbus: the device simulators; lean: a codec-built server that keeps up",
    )
    ap.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="measure only the coalesced plan (quicker comparisons)",
    )
    ap.add_argument(
        "--no-spread",
        dest="spread",
        action="store_false",
        help="start every device's cycle in the same instant (the gateway spreads them)",
    )
    args = ap.parse_args()
    n_ports = -(-args.devices // UNITS_PER_PORT)
    ports = free_ports(n_ports)
    chunks = [ports[i :: args.sim_processes] for i in range(args.sim_processes)]
    stop = mp.Event()
    procs = []
    for chunk in chunks:
        ready = mp.Event()
        if args.servers == "lean":
            proc = mp.Process(target=serve_lean, args=(chunk, ready, stop), daemon=True)
        else:
            proc = mp.Process(target=serve, args=(chunk, args.points, ready, stop), daemon=True)
        proc.start()
        ready.wait(60)
        procs.append(proc)
    try:
        modes = (True, False) if args.baseline else (True,)
        results = {c: asyncio.run(run(ports, args, coalesce=c)) for c in modes}
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
    print(
        f"{args.devices} devices x {args.points} points at {args.hz:g} Hz "
        f"({results[True]['wanted_s']:,.0f} points/s asked), {args.seconds:g} s, "
        f"{Path(__file__).name}, {args.servers} servers, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    for c, name in ((True, "coalesced"), (False, "one request per point (baseline)")):
        if c not in results:
            continue
        r = results[c]
        per_core = r["read_s"] / r["cpu_s"] if r["cpu_s"] else float("nan")
        print(
            f"  {name:34s}: {r['points_s']:9,.0f} points/s in batches ({r['read_s']:9,.0f} read)"
            f"  {r['requests_s']:7,.0f} req/s  jitter p99 {r['p99_ms']:7.1f} ms"
            f"  gateway CPU {r['cpu_s'] * 100:5.1f} % (sys {r['sys_s'] * 100:4.1f})"
            f"  = {per_core:9,.0f} points/s per core"
        )
    if not args.baseline:
        return
    a, b = results[True], results[False]

    def per_point(r: dict[str, float], key: str) -> float:
        return r[key] / max(r["read_s"], 1)

    print(
        f"  ratio baseline/coalesced per point read: requests "
        f"{per_point(b, 'requests_s') / per_point(a, 'requests_s'):.1f}x,"
        f" CPU {per_point(b, 'cpu_s') / per_point(a, 'cpu_s'):.1f}x"
        "  (without coalescing a bus needs one round trip per point: its cycles overrun)"
    )


if __name__ == "__main__":
    main()
