"""HTTP API under load: latest values of 10,000 sensors in one request, and the alarm list at a
steady request rate. Prints p50/p99 of each, with a baseline (GET /healthz, the framework's own
floor) measured in the same run.

Run: .venv/bin/python bench/api.py [--sensors 10000] [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

# the scripts here are named like our packages: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import uvicorn

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, evaluate
from alerts.statedb import StateDB
from alerts.table import compile_table
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import build_registry


def registry(n: int):
    per = 100
    devices = [
        {
            "id": f"d{d}",
            "profile": "p",
            "sensors": [
                {
                    "id": f"s{d}-{i}",
                    "point": f"p{i}",
                    "kind": "methane",
                    "levels": [{"name": "alarm", "tier": "yellow", "above": 1.0, "recover": 1.0}],
                }
                for i in range(per)
            ],
        }
        for d in range(n // per)
    ]
    return build_registry(
        HubConfig.model_validate(
            {
                "tenants": [{"id": "t", "sites": [{"id": "s", "devices": devices}]}],
                "device_profiles": [
                    {"name": "p", "points": [{"name": f"p{i}", "address": i} for i in range(per)]}
                ],
            }
        )
    )


async def timed(client: httpx.AsyncClient, path: str, params: dict | None = None) -> float:
    """Milliseconds to answer; NaN for an error or a timeout (counted, not hidden)."""
    t = time.perf_counter()
    try:
        r = await client.get(path, params=params)
        r.raise_for_status()
    except httpx.HTTPError:
        return float("nan")
    return (time.perf_counter() - t) * 1000


async def at_rate(client, path, params, rate: float, seconds: float) -> np.ndarray:
    tasks, start = [], time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(client, path, params)))
    return np.array(await asyncio.gather(*tasks))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    reg = registry(args.sensors)
    tmp = Path(tempfile.mkdtemp())
    store = SqliteStore(reg, tmp / "ts.db")
    await store.open()
    n = len(reg.sensors)
    now = time.time_ns() // 1_000_000
    rng = np.random.default_rng(1)
    for k in range(10):  # 10 readings per sensor, 1 % of them over the alarm level
        batch = ReadingBatch(
            np.arange(n, dtype=np.int32),
            np.full(n, now - 10_000 + k * 1000),
            np.where(rng.random(n) < 0.01, 1.5, 0.4),
            np.zeros(n, np.uint8),
            np.zeros(n, np.int64),
            np.full(n, k, np.int64),
        )
        await store.write_readings(batch)
    db = StateDB(tmp / "state.db")
    table = compile_table(reg.sensors)
    _, tr, _ = evaluate(table, batch, CoreState.empty(n), now)
    AlarmBook(db, reg, table).apply(tr, now)
    app = create_app(
        AppContext(
            reg,
            store,
            db,
            Metrics(),
            KeyRing([ApiKeySpec(name="op", sha256=hash_key("k"), role="operator")]),
        )
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=18765, log_level="error"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:18765",
        headers={"Authorization": "Bearer k"},
        timeout=30,
        limits=httpx.Limits(max_connections=64),
    ) as client:
        latest = np.array([await timed(client, "/api/v1/latest") for _ in range(30)])
        got = len((await client.get("/api/v1/latest")).json())
        base = await at_rate(client, "/healthz", None, args.rate, min(args.seconds, 10))
        alarms = await at_rate(client, "/api/v1/alarms", {"limit": 100}, args.rate, args.seconds)
    server.should_exit = True
    await serving
    await store.close()
    db.close()

    def p(a: np.ndarray) -> str:
        ok = a[~np.isnan(a)]
        failed = int(np.isnan(a).sum())
        if not len(ok):
            return f"all {failed} requests failed"
        return (
            f"p50 {np.percentile(ok, 50):7.1f} ms  p99 {np.percentile(ok, 99):7.1f} ms"
            f"  failed/timed out {failed} of {len(a)}"
        )

    print(f"latest of {got:,} sensors, one request : {p(latest)}  (target p99 < 200 ms)")
    print(
        f"alarm list at {args.rate:g} req/s, {args.seconds:g} s : {p(alarms)}  (target p99 < 50 ms)"
    )
    print(f"baseline GET /healthz at {args.rate:g} req/s : {p(base)}")
    ratio = np.nanpercentile(alarms, 99) / np.nanpercentile(base, 99)
    print(f"ratio alarm list / baseline p99: {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
