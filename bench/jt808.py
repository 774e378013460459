"""JT/T 808 gateway load: N concurrent terminals on loopback, each reporting 0x0200 every 10 s.

A real Mosquitto (as the test fixtures start it, ``tests/services.py``) and the gateway
(`gateway.jt808.Jt808Gateway`, spool on disk, QoS 1) run in their own processes; this process
runs the terminals (`simulators.jt808`) and an MQTT subscriber on the position topics. Printed:
positions/s seen by the subscriber against the offered rate, p50/p99 latency from the terminal's
write of the frame to the subscriber's receipt of the record (through the server, the spool and
the broker), the gateway process's CPU use, and its counters.

Run: .venv/bin/python bench/jt808.py [--terminals 10000] [--interval 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import aiomqtt
import numpy as np

from gateway.jt808 import HoldPolicy, Jt808Gateway
from hazardhub.settings import load_registry
from simulators.jt808 import Fix, Jt808Terminal
from telemetry.posenvelope import records_of

from services import MosquittoService


class BenchMosquitto(MosquittoService):
    def _write_conf(self) -> None:
        super()._write_conf()
        with self.conf_path.open("a") as f:
            f.write("max_inflight_messages 2000\nmax_queued_messages 1000000\n")


def phone(i: int) -> str:
    return f"0138{i:08d}"


def write_config(path: Path, n: int) -> None:
    lines = ["version: 1", "tenants:", "  - id: bench", "    vehicles:"]
    lines += [
        f'      - {{id: v{i:05d}, plate: "B{i:05d}", class: hazmat, terminal: "{phone(i)}"}}'
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def serve(
    cfg: Path, broker_port: int, spool: Path, port_q: mp.Queue[int], out_q: mp.Queue[str]
) -> None:
    async def main() -> None:
        registry = load_registry(cfg, [ROOT / "profiles"])
        gw = Jt808Gateway(
            registry,
            listen=("127.0.0.1", 0),
            broker=("127.0.0.1", broker_port),
            spool_dir=spool,
            idle_timeout_s=120,
            max_per_host=1_000_000,  # every terminal comes from 127.0.0.1
            hold=HoldPolicy(live_s=0),  # (the latency of live positions, not of the hold)
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        task = asyncio.create_task(gw.run(stop))
        await gw.ready.wait()
        assert gw.server.address is not None
        port_q.put(gw.server.address[1])
        await task
        lat = np.array(gw.uplink.latencies_ms or [0])
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        out_q.put(
            f"gateway: cpu {cpu.ru_utime + cpu.ru_stime:.1f} s, receive-to-PUBACK p50 "
            f"{np.percentile(lat, 50):.0f} ms p99 {np.percentile(lat, 99):.0f} ms, "
            f"spooled {gw.uplink.pending}, counters {dict(gw.server.counters)}"
        )

    asyncio.run(main())


async def subscriber(
    port: int, sent: dict[tuple[str, int], float], lat: list[float], ready: asyncio.Event
) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-jt808-sub", max_queued_incoming_messages=0
    ) as client:
        await client.subscribe("hazardhub/v1/bench/vehicles/+/position", qos=0)
        ready.set()
        async for msg in client.messages:
            now = time.perf_counter()
            vehicle = str(msg.topic).split("/")[4]
            for rec in records_of(bytes(msg.payload)):  # type: ignore[arg-type]
                t = sent.pop((vehicle, rec["ts"]), None)
                if t is not None:
                    lat.append(now - t)


async def terminal(
    i: int,
    port: int,
    interval: float,
    sent: dict[tuple[str, int], float],
    gate: asyncio.Semaphore,
    stop: asyncio.Event,
    online: list[int],
) -> None:
    t = Jt808Terminal("127.0.0.1", port, phone(i), timeout_s=60)
    async with gate:
        await t.connect()
        await t.login()
    online[0] += 1
    rng = random.Random(i)
    await asyncio.sleep(rng.uniform(0, interval))
    vehicle = f"v{i:05d}"
    lat0, lon0 = 30 + rng.random(), 120 + rng.random()
    k = 0
    try:
        while not stop.is_set():
            now_ms = time.time_ns() // 1_000_000
            ts = now_ms - now_ms % 1000
            sent[(vehicle, ts)] = time.perf_counter()
            await t.report(Fix(ts, lat0 + k * 1e-4, lon0, 50.0, 90, 10), wait=False)
            k += 1
            await asyncio.sleep(interval)
    finally:
        await t.close()


async def run(args: argparse.Namespace, work: Path) -> None:
    broker = BenchMosquitto(work / "mosquitto").launch()
    cfg = work / "bench.yaml"
    write_config(cfg, args.terminals)
    ctx = mp.get_context("spawn")
    port_q: mp.Queue[int] = ctx.Queue()
    out_q: mp.Queue[str] = ctx.Queue()
    proc = ctx.Process(target=serve, args=(cfg, broker.port, work / "spool", port_q, out_q))
    proc.start()
    try:
        port = await asyncio.to_thread(port_q.get, True, 60)
        sent: dict[tuple[str, int], float] = {}
        lat: list[float] = []
        ready = asyncio.Event()
        sub = asyncio.create_task(subscriber(broker.port, sent, lat, ready))
        await ready.wait()
        stop = asyncio.Event()
        gate = asyncio.Semaphore(200)
        online = [0]
        t0 = time.perf_counter()
        terms = [
            asyncio.create_task(terminal(i, port, args.interval, sent, gate, stop, online))
            for i in range(args.terminals)
        ]
        while online[0] < args.terminals:
            await asyncio.sleep(0.5)
            if any(t.done() and t.exception() for t in terms):
                raise next(t.exception() for t in terms if t.done() and t.exception())  # type: ignore[misc]
        took = time.perf_counter() - t0
        print(f"{args.terminals} terminals registered and authenticated in {took:.1f} s")
        await asyncio.sleep(args.interval)  # every terminal has started reporting
        lat.clear()
        start, n0 = time.perf_counter(), len(lat)
        await asyncio.sleep(args.seconds)
        elapsed = time.perf_counter() - start
        window = np.array(lat[n0:]) * 1000
        stop.set()
        rate = len(window) / elapsed
        offered = args.terminals / args.interval
        print(
            f"positions/s {rate:.0f} (offered {offered:.0f}), over {elapsed:.0f} s; "
            f"frame-to-published latency p50 {np.percentile(window, 50):.1f} ms "
            f"p99 {np.percentile(window, 99):.1f} ms max {window.max():.1f} ms; "
            f"unanswered at the end {len(sent)}"
        )
        await asyncio.wait(terms, timeout=30)
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
    finally:
        if proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.join(30)
        if not out_q.empty():
            print(out_q.get())
        broker.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--terminals", type=int, default=10_000)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-jt808-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
