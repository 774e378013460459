"""The hub's ingest path end to end: MQTT -> ingest -> alert core -> InfluxDB, with real servers.

A real Mosquitto and a real influxd are started in a temporary folder (as the test fixtures do,
``tests/services.py``). A publisher process sends telemetry messages of 100 readings each (QoS 1,
event time = publish time) at `--rate` readings/s for `--seconds`; the hub runs in this process as
`hazardhub.hub` wires it: `IngestService` -> `Dispatcher` (the store, then the numpy alert core and
the alarm book) with `BufferedStore(InfluxStore)`. Printed:

- sustained readings/s: readings stored per second while publishing (and the slowest second);
- zero loss: readings counted in InfluxDB (``count(value)`` per series) against readings sent;
- p99 (and p50, max) of publish-to-stored latency per reading: from the reading's event time
  (its publish time) to the return of the store write that holds it;
- the hub's CPU time (this process: `time.process_time`) from the first publish until every
  reading is handled, and per reading; beside it, influxd's and mosquitto's (from /proc): on this
  2-core machine, influxd's work per reading (its parsing, index, cache and log of 4 fields per
  point) bounds the sustained figure well before the hub does.

Run: .venv/bin/python bench/ingest.py [--rate 200000] [--seconds 20] [--devices 200] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import multiprocessing as mp
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alerts.alarms import AlarmEvent
from alerts.statedb import StateDB
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.service import IngestService
from ingest.store.base import Aggregate, LatestValue, PositionBatch, ReadingBatch
from ingest.store.buffered import BufferedStore
from ingest.store.influx import InfluxStore
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry
from telemetry.topics import TopicLayout

from services import InfluxService, MosquittoService

BATCH = 100
TENANT, SITE = "bench", "site"


class BenchMosquitto(MosquittoService):
    """The fixture's broker with room for a fast subscriber: many unacknowledged messages in
    flight (the hub acknowledges after storing), a deep queue."""

    def _write_conf(self) -> None:
        super()._write_conf()
        with self.conf_path.open("a") as f:
            f.write("max_inflight_messages 2000\nmax_queued_messages 1000000\n")


def registry(devices: int) -> Registry:
    level = {"name": "high", "tier": "yellow", "above": 1.0, "recover": 0.8}
    config = HubConfig.model_validate(
        {
            "device_profiles": [
                {"name": "p100", "points": [{"name": f"p{i}", "address": i} for i in range(BATCH)]}
            ],
            "rule_packs": [{"name": "bench", "rules": {"ch4": {"levels": [level]}}}],
            "tenants": [
                {
                    "id": TENANT,
                    "sites": [
                        {
                            "id": SITE,
                            "kind": "mine",
                            "devices": [
                                {
                                    "id": f"d{d}",
                                    "profile": "p100",
                                    "sensors": [
                                        {
                                            "id": f"d{d}.p{i}",
                                            "point": f"p{i}",
                                            "kind": "methane",
                                            "rule": "bench.ch4",
                                        }
                                        for i in range(BATCH)
                                    ],
                                }
                                for d in range(devices)
                            ],
                        }
                    ],
                }
            ],
        }
    )
    return build_registry(config)


def publish(host: str, port: int, rate: float, seconds: float, devices: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The publisher process: paho-mqtt, QoS 1, messages spread evenly over each second."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from telemetry.codec import TelemetryBatch, encode

    layout = TopicLayout()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    rng = np.random.default_rng(1)
    keys = tuple(f"p{i}" for i in range(BATCH))
    key = np.arange(BATCH, dtype=np.uint16)
    quality = np.zeros(BATCH, np.uint8)
    topics = [layout.telemetry(TENANT, SITE, f"d{d}") for d in range(devices)]
    epoch = time.time_ns() // 1_000_000
    seq = [0] * devices
    per_s = rate / BATCH
    sent = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * per_s) + 1
        while sent < due:
            d = sent % devices
            now = time.time_ns() // 1_000_000
            values = np.round(rng.normal(0.4, 0.12, BATCH), 2)  # a few readings pass 1.0
            b = TelemetryBatch(
                "gw",
                f"d{d}",
                epoch,
                seq[d],
                keys,
                key,
                np.full(BATCH, now, np.int64),
                values,
                quality,
            )
            seq[d] += 1
            client.publish(topics[d], encode(b), qos=1)
            sent += 1
        time.sleep(max(0.0, (sent / per_s) - (time.perf_counter() - start)))
    published_s = time.perf_counter() - start
    deadline = time.perf_counter() + 60
    while acked < sent and time.perf_counter() < deadline:
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()
    out.put((sent * BATCH, published_s, acked * BATCH))


class Timed:
    """The store, measured: when each write returns, the latency of every reading it held
    (now - event time) and the stored count per second. Everything else passes through."""

    def __init__(self, store: BufferedStore) -> None:
        self.store = store
        self.latencies: list[np.ndarray] = []
        self.stored_at: list[tuple[float, int]] = []

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def write_readings(self, batch: ReadingBatch) -> None:
        await self.store.write_readings(batch)
        now = time.time_ns() // 1_000_000
        self.latencies.append((now - batch.ts).astype(np.int32))
        self.stored_at.append((time.perf_counter(), len(batch)))

    async def write_positions(self, batch: PositionBatch) -> None:
        await self.store.write_positions(batch)

    async def write_alarm_events(self, events: Sequence[AlarmEvent]) -> None:
        await self.store.write_alarm_events(events)

    async def latest(self, sensors: Sequence[int]) -> dict[int, LatestValue]:
        return await self.store.latest(sensors)

    async def history(
        self,
        sensor: int,
        start_ms: int,
        end_ms: int,
        every_ms: int | None = None,
        aggregate: Aggregate = "mean",
    ) -> list[tuple[int, float]]:
        return await self.store.history(sensor, start_ms, end_ms, every_ms, aggregate)

    async def readings(
        self, sensor: int, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[tuple[int, float, int]]:
        return await self.store.readings(sensor, start_ms, end_ms, limit)

    async def track(self, vehicle: int, start_ms: int, end_ms: int) -> PositionBatch:
        return await self.store.track(vehicle, start_ms, end_ms)

    async def last_positions(self, vehicles: Sequence[int]) -> PositionBatch:
        return await self.store.last_positions(vehicles)

    async def count_by_seq(self, tenant: str, device: str) -> dict[tuple[int, int], int]:
        return await self.store.count_by_seq(tenant, device)

    async def alarm_events(
        self, tenants: Sequence[str] | None, start_ms: int, end_ms: int
    ) -> list[AlarmEvent]:
        return await self.store.alarm_events(tenants, start_ms, end_ms)


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user and system) a server process used so far, from /proc (0: unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count_in_influx(url: str, database: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        resp = await client.get(
            "/query",
            params={"db": database, "q": 'SELECT count("value") FROM "reading"'},
        )
    series = resp.json()["results"][0].get("series") or []
    return int(series[0]["values"][0][1]) if series else 0


async def run(args: argparse.Namespace, work: Path) -> None:
    broker = BenchMosquitto(work / "mosquitto").launch()
    influx = InfluxService(work / "influxd").launch()
    try:
        reg = registry(args.devices)
        layout = TopicLayout()
        metrics = Metrics()
        statedb = StateDB(work / "state.db")
        inner = InfluxStore(reg, influx.url, "bench", gzip_level=args.gzip)
        store = Timed(BufferedStore(inner, reg, work / "spool"))
        dispatcher = Dispatcher(reg, store, statedb, metrics)  # type: ignore[arg-type]
        service = IngestService(
            Pipeline(reg, layout, metrics),
            dispatcher,
            statedb,
            metrics,
            layout,
            host=broker.host,
            port=broker.port,
            client_id="bench-hub",
            flush_messages=args.flush_messages,
            flush_readings=args.flush_readings,
            flush_interval_s=args.flush_interval,
            queue_size=4000,
        )
        await store.open()
        # as `hazardhub.hub` does once started: what exists now (the registry, the rule tables)
        # is moved out of the collector's sight, so a full collection walks only what batches make
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        hub = asyncio.create_task(service.run(stop), name="hub")
        await asyncio.wait_for(service.ready.wait(), 10)
        out: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        proc = mp.get_context("spawn").Process(
            target=publish,
            args=(broker.host, broker.port, args.rate, args.seconds, args.devices, out),
            name="publisher",
        )
        profiler = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        cpu0 = time.process_time()  # the hub's CPU (this process, all its threads)
        servers0 = server_cpu(influx.pid), server_cpu(broker.pid)
        proc.start()
        if profiler:
            profiler.enable()
        while proc.is_alive():
            await asyncio.sleep(0.1)
        sent, published_s, acked = out.get(timeout=5)
        deadline = time.monotonic() + 120
        while metrics.total("hazardhub_readings_total") < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        drained = time.perf_counter()
        hub_cpu = time.process_time() - cpu0
        influx_cpu = server_cpu(influx.pid) - servers0[0]
        broker_cpu = server_cpu(broker.pid) - servers0[1]
        if profiler:
            profiler.disable()
        stop.set()
        await hub
        await store.close()
        statedb.close()
        stored = await count_in_influx(influx.url, "bench")
    finally:
        broker.stop()
        influx.stop()

    lat = np.concatenate(store.latencies) if store.latencies else np.zeros(1, np.int32)
    times = np.array([t for t, _ in store.stored_at]) - t0
    counts = np.array([n for _, n in store.stored_at])
    window = (times >= 1.0) & (times < published_s)  # the steady part, first second left out
    per_second = np.bincount(times[window].astype(int), weights=counts[window])[1:]
    print(
        f"published : {sent:,} readings in {published_s:.1f} s ({sent / published_s:,.0f}/s); "
        f"broker acknowledged {acked:,}"
    )
    print(
        f"stored    : {stored:,} in InfluxDB; lost: {sent - stored:,}; all handled after "
        f"{drained - t0:.1f} s"
    )
    if per_second.size:
        print(
            f"sustained : {per_second.mean():,.0f} readings/s stored while publishing "
            f"(slowest second {per_second.min():,.0f})"
        )
    print(
        f"latency   : p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms, "
        f"max {lat.max()} ms (publish to stored, per reading)"
    )
    print(
        f"hub CPU   : {hub_cpu:.1f} s from the first publish to the last reading handled, "
        f"{hub_cpu / max(sent, 1) * 1e6:.1f} us per reading"
    )
    print(
        f"servers   : influxd {influx_cpu:.1f} s CPU ({influx_cpu / max(sent, 1) * 1e6:.1f} us per "
        f"reading), mosquitto {broker_cpu:.1f} s ({broker_cpu / max(sent, 1) * 1e6:.1f} us)"
    )
    bstats = store.store.stats()
    print(
        f"spool     : {bstats.spooled_rows:,} rows spooled, {bstats.spool.pending_records} "
        "records left"
    )
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200_000, help="readings/s to publish")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--devices", type=int, default=200, help="devices of 100 sensors each")
    ap.add_argument("--flush-messages", type=int, default=50, help="IngestService.flush_messages")
    ap.add_argument("--flush-readings", type=int, default=5000)
    ap.add_argument("--flush-interval", type=float, default=0.05)
    ap.add_argument(
        "--gzip",
        type=int,
        default=None,
        help="gzip level of write bodies (0: off; default: InfluxStore's, off on loopback)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the hub process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hazardhub-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
