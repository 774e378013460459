"""HTTP API under load: latest values of 10,000 sensors in one request, and the alarm list at a
steady request rate. Prints p50/p99 of each, with a baseline (GET /healthz, the framework's own
floor) measured in the same run by the same client.

The server runs as the hub runs it: the app under uvicorn in this process (access log off), over
a SQLite time-series store holding 10 readings of every sensor and a StateDB with the alarms they
raised (1 % of the sensors). While the alarm list is asked for, alarms keep changing as a busy
hub's do (``--churn``, 5 a second by default: readings through `evaluate` and the `AlarmBook`,
written from a worker thread, in this process): the alarm list's kept answers (`api.encode.
AnswerCache`) are then read again from the database after each change, 2.5 % of the requests at
200 a second, more than the 1 % a p99 may hide. The load comes from a separate client process
(this script with
``--client``), so that making and timing requests does not share the server's interpreter lock:
a small HTTP/1.1 client over asyncio streams with keep-alive connections (8 by default), every
request with its bearer key. A request at a rate is due at ``start + i / rate``; its latency is
counted from that due time to the last byte of the answer, so time spent waiting for a free
connection or behind a late client counts too (no coordinated omission). An answer other than
200, or none within 30 s, counts as failed. The load average is printed beside each figure: the
machine may be shared.

The latest values make 10,000 objects per request, and every few requests that sets off a full
collection of the garbage collector over every object of the process (the registry's, the app's):
~140 ms here. The hub calls ``gc.freeze()`` once set up (and after a configuration change), and so
does this bench; ``--no-gc-freeze`` shows the figures without it.

Run: .venv/bin/python bench/api.py [--sensors 10000] [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# the scripts here are named like our packages: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

TIMEOUT_S = 30.0


# -- the client (its own process) ---------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a GET at a time, answers read by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, request: bytes) -> tuple[int, int]:
        """Send one request; return the status and the body's length once it is all read."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(
            (
                int(v)
                for k, _, v in (x.partition(b":") for x in lines[1:])
                if k.lower() == b"content-length"
            ),
            None,
        )
        if length is None:
            raise RuntimeError("an answer without Content-Length")
        await self.reader.readexactly(length)
        return status, length

    def close(self) -> None:
        self.writer.close()


def request_bytes(host: str, port: int, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()


async def serial(conn: Connection, request: bytes, n: int) -> list[float]:
    """`n` requests one after the other; milliseconds each (NaN: failed)."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(conn.get(request), TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, RuntimeError):
            out.append(float("nan"))
            continue
        out.append((time.perf_counter() - t) * 1000 if status == 200 else float("nan"))
    return out


async def at_rate(
    host: str, port: int, request: bytes, rate: float, seconds: float, connections: int
) -> list[float]:
    """Requests due at `start + i / rate` over `connections` keep-alive connections; each one's
    milliseconds from its due time to its answer's last byte (NaN: failed)."""
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await Connection.open(host, port))
    n = int(rate * seconds)
    out = [float("nan")] * n

    async def one(i: int, due: float) -> None:
        conn = await free.get()
        try:
            status, _ = await asyncio.wait_for(conn.get(request), TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, RuntimeError):
            conn.close()  # its state is unknown: a fresh one takes its place
            free.put_nowait(await Connection.open(host, port))
            return
        free.put_nowait(conn)
        if status == 200:
            out[i] = (time.perf_counter() - due) * 1000

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait().close()
    return out


async def client(args: argparse.Namespace) -> None:
    """The phases, one after the other; one JSON line of milliseconds per phase."""
    host, port, key = "127.0.0.1", args.port, args.key

    def report(name: str, ms: list[float], load: float) -> None:
        print(json.dumps({"phase": name, "ms": ms, "load": load}), flush=True)

    conn = await Connection.open(host, port)
    latest = request_bytes(host, port, "/api/v1/latest", key)
    await serial(conn, latest, 3)  # warm up
    report("latest", await serial(conn, latest, args.latest_n), os.getloadavg()[0])
    conn.close()
    for name, path, seconds in (
        ("healthz", "/healthz", min(args.seconds, 10.0)),
        ("alarms", "/api/v1/alarms?limit=100", args.seconds),
    ):
        req = request_bytes(host, port, path, key)
        ms = await at_rate(host, port, req, args.rate, seconds, args.connections)
        report(name, ms, os.getloadavg()[0])


# -- the server (this process) ------------------------------------------------------------------


def registry(n: int):
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry

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


def p(a: np.ndarray) -> str:
    ok = a[~np.isnan(a)]
    failed = int(np.isnan(a).sum())
    if not len(ok):
        return f"all {failed} requests failed"
    return (
        f"p50 {np.percentile(ok, 50):7.1f} ms  p99 {np.percentile(ok, 99):7.1f} ms"
        f"  failed/timed out {failed} of {len(a)}"
    )


async def server(args: argparse.Namespace) -> None:
    import httpx
    import uvicorn

    from alerts.alarms import AlarmBook
    from alerts.evaluate import CoreState, Readings, evaluate
    from alerts.statedb import StateDB
    from alerts.table import compile_table
    from api.app import AppContext, create_app
    from api.auth import KeyRing, hash_key
    from ingest.metrics import Metrics
    from ingest.store.base import ReadingBatch
    from ingest.store.sqlite import SqliteStore
    from telemetry.config import ApiKeySpec

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
    core, tr, _ = evaluate(table, batch, CoreState.empty(n), now)
    book = AlarmBook(db, reg, table)
    book.apply(tr, now)
    changes = 0

    async def churn() -> None:
        """Alarms raised and cleared, `args.churn` a second, among the first 500 sensors."""
        nonlocal core, changes
        high = set(np.flatnonzero(batch.value[:500] > 1.0).tolist())
        tick = 0
        while True:
            await asyncio.sleep(1 / args.churn)
            tick += 1
            s = (tick * 7) % 500
            value = 0.4 if s in high else 1.5
            high.symmetric_difference_update({s})
            one = Readings(
                np.array([s], np.int32),
                np.array([now + tick * 1000], np.int64),
                np.array([value]),
                np.zeros(1, np.uint8),
            )
            core, tr, _ = evaluate(table, one, core, now + tick * 1000)
            await asyncio.to_thread(book.apply, tr, now + tick * 1000, core)
            changes += 1

    app = create_app(
        AppContext(
            reg,
            store,
            db,
            Metrics(),
            KeyRing([ApiKeySpec(name="op", sha256=hash_key("k"), role="operator")]),
        )
    )
    if args.gc_freeze:  # as the hub does once it is set up (hazardhub.hub._settle_memory)
        gc.collect()
        gc.freeze()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, log_level="error", access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{args.port}", headers={"Authorization": "Bearer k"}
    ) as check:
        got = len((await check.get("/api/v1/latest")).json())
        alarms = len((await check.get("/api/v1/alarms", params={"limit": 100})).json())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        f"--port={args.port}",
        "--key=k",
        f"--rate={args.rate}",
        f"--seconds={args.seconds}",
        f"--connections={args.connections}",
        f"--latest-n={args.latest_n}",
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,  # a phase's milliseconds come as one line
    )
    assert proc.stdout is not None
    lines: list[str] = []
    churning = None
    while line := (await proc.stdout.readline()).decode():
        lines.append(line)
        if json.loads(line)["phase"] == "latest" and args.churn > 0:  # the alarm phases follow
            churning = asyncio.create_task(churn())
    await proc.wait()
    if churning is not None:
        churning.cancel()
    server.should_exit = True
    await serving
    await store.close()
    db.close()
    if proc.returncode != 0:
        raise SystemExit(f"the client failed ({proc.returncode})")
    phases = {d["phase"]: d for d in map(json.loads, lines)}
    ms = {k: np.array(v["ms"], dtype=float) for k, v in phases.items()}
    load = {k: v["load"] for k, v in phases.items()}
    print(
        f"latest of {got:,} sensors, one request : {p(ms['latest'])}  (target p99 < 200 ms)"
        f"  load {load['latest']:.2f}"
    )
    print(
        f"alarm list ({alarms} alarms) at {args.rate:g} req/s, {args.seconds:g} s : "
        f"{p(ms['alarms'])}  (target p99 < 50 ms)  load {load['alarms']:.2f}"
    )
    print(
        f"baseline GET /healthz at {args.rate:g} req/s : {p(ms['healthz'])}"
        f"  load {load['healthz']:.2f}"
    )
    ratio = np.nanpercentile(ms["alarms"], 99) / np.nanpercentile(ms["healthz"], 99)
    print(f"ratio alarm list / baseline p99: {ratio:.1f}x  ({args.connections} connections)")
    print(
        f"alarm changes while the client ran: {changes} ({args.churn:g}/s)"
        f"; gc.freeze() after setup: {'yes' if args.gc_freeze else 'no'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--connections", type=int, default=8, help="client keep-alive connections")
    ap.add_argument("--churn", type=float, default=5, help="alarm changes a second (0: none)")
    ap.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="without the hub's gc.freeze() once set up (which leaves the registry's and the "
        "app's objects out of the full collections that 10,000 latest values set off every few "
        "requests, ~140 ms each)",
    )
    ap.add_argument("--latest-n", type=int, default=30, help="requests for the latest values")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--key", default="k", help=argparse.SUPPRESS)
    args = ap.parse_args()
    asyncio.run(client(args) if args.client else server(args))


if __name__ == "__main__":
    main()
