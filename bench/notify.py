"""Notification pipeline under load: alarm transitions at a steady rate through the alarm book,
the journal, 1,000 subscriptions, the outbox and signed webhooks to a receiver on loopback.

100 tenants of 10 sites (50,000 sensors: methane, CO, LEL, with a yellow and a red level) and
10 subscriptions per tenant (a pair of sites each for five of them, so that every event of the
tenant finds one; red raises, CO, sensor faults, the LEL of one site, acknowledgements) make
~1-3 webhooks per annunciated transition. A producer applies `--rate` transitions/s in batches
every `--tick-ms` for `--seconds` (`AlarmBook.apply` in a worker thread, as the hub does) while
`Notifier.run` routes and delivers in the same process and event loop. The webhook receiver is a
separate process (a plain asyncio HTTP/1.1 server with keep-alive) that checks each signature and
records, per event, its arrival at the receiver against the event's `arrival` (when the hub
judged the transition).

Printed: the transitions/s achieved, webhooks made and delivered (and the TCP connections the
receiver accepted), deliveries/s, p50/p99 of the transition-to-webhook latency, what was still
queued when the notifier was told to stop after at most `--drain` s (the journal not yet routed,
the outbox not yet sent; they count in the percentiles at their age at the end, so a percentile
among them is a lower bound, marked ">="), how long `Notifier.run` took to return, and two
baselines measured in the same run: `AlarmBook.apply` alone (transitions/s without
notifications) and a POST loop to the same receiver with the webhook channel's HTTP client and
with httpx, the library it replaced (requests/s and CPU per request), with the ratios. The target
(p99 < 200 ms at `--rate`) is reported as met or not; nothing is asserted.

Run: .venv/bin/python bench/notify.py [--seconds 60] [--rate 10000] [--group 0] [--drain 15]
(`--group 1.0` gives the site subscriptions a 1 s grouping window; `--batch 200` lets a webhook
POST carry up to 200 notifications; `--notifier-process` runs the notifier in a process of its
own on the same SQLite file, polling the journal every 10 ms, as a hub could to use a second
core). The CPU seconds of the producing process and of the notifier are printed beside, and
(the notifier in the process) how they split: `AlarmBook.apply`, `Notifier.route` and
delivery's SQL (its takes and settles), each measured on its worker thread, and the event loop's
rest (sending), per transition and per webhook. A run that falls behind spends more per
transition (takes of a backlog): compare runs that kept up, on a machine as quiet."""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the scripts here are named like our packages: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import numpy.typing as npt
import orjson

from alerts.alarms import AlarmBook
from alerts.notify.channels import _PER_HOST as PER_HOST
from alerts.notify.channels import Senders
from alerts.notify.notifier import Notifier
from alerts.notify.outboxdb import OutboxDB
from alerts.statedb import StateDB
from alerts.table import compile_table
from bench.notify_baselines import ThreadCpu, apply_alone, post_loop
from bench.notify_load import Stream, registry, subscriptions
from telemetry.notifyconfig import NotifySettings, SmtpSpec
from telemetry.registry import Registry

RECEIVER = Path(__file__).resolve().parent / "notify_receiver.py"


# -- the hub side ----------------------------------------------------------------------------


def backlog(db: StateDB, outbox: OutboxDB) -> tuple[int, int]:
    """(journal events not yet routed, outbox rows pending)."""
    cursor = outbox.query("SELECT last_id FROM notify_cursor WHERE name = 'route'")
    last = db.query("SELECT COALESCE(MAX(id), 0) FROM alarm_events")[0][0]
    pending = outbox.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0]
    return int(last) - int(cursor[0][0] if cursor else 0), int(pending)


async def produce(
    book: AlarmBook, notifier: Notifier, stream: Stream, args: argparse.Namespace
) -> tuple[int, float, list[float]]:
    """Apply `--rate` transitions/s for `--seconds`; (transitions, seconds, lag of each batch)."""
    size = int(args.rate * args.tick_ms / 1000)
    n, lags, k = 0, [], 0
    start = time.perf_counter()
    end = start + args.seconds
    while (due := start + k * args.tick_ms / 1000) < end and time.perf_counter() < end:
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        tr = stream.next(size, args.tick_ms)
        await asyncio.to_thread(book.apply, tr, time.time_ns() // 1_000_000)
        notifier.wake.set()
        n += size
        k += 1
    return n, time.perf_counter() - start, lags


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=10_000, help="transitions/s")
    ap.add_argument("--tick-ms", type=int, default=100)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--group", type=float, default=0.0, help="window of the site subscriptions")
    ap.add_argument(
        "--batch", type=int, default=1, help="webhook batch_max: notifications per POST"
    )
    ap.add_argument("--in-flight", type=int, default=NotifySettings().max_in_flight)
    ap.add_argument("--drain", type=float, default=15, help="at most this long after producing")
    ap.add_argument("--baseline-seconds", type=float, default=5)
    ap.add_argument(
        "--notifier-process",
        action="store_true",
        help="run the notifier in a process of its own on the same state database (WAL)",
    )
    ap.add_argument("--notifier-db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.notifier_db:
        asyncio.run(notifier_alone(args))
        return
    child = subprocess.Popen([sys.executable, str(RECEIVER)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        asyncio.run(run(args, f"http://127.0.0.1:{int(child.stdout.readline())}"))
    finally:
        child.terminate()
        child.wait()


async def notifier_alone(args: argparse.Namespace) -> None:
    """The notifier of `--notifier-process`: routes and delivers from the state database the
    producer writes, until a line (or the end) on stdin; it is not woken, it looks every 10 ms."""
    reg = registry(args.tenants, args.sites, 2, 25)
    db = StateDB(args.notifier_db)
    senders = Senders(smtp=SmtpSpec())
    notifier = Notifier(db, reg, senders, NotifySettings(max_in_flight=args.in_flight))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    told = loop.run_in_executor(None, sys.stdin.readline)
    told.add_done_callback(lambda _: stop.set())
    cpu = time.process_time()
    print("ready", flush=True)
    await notifier.run(stop, period_s=0.01)
    await senders.aclose()
    notifier.close()
    db.close()
    print(f"{time.process_time() - cpu:.3f}", flush=True)


class NotifierProcess:
    """`notifier_alone` in a child process."""

    def __init__(self, path: Path, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--notifier-db", str(path)]
        cmd += ["--tenants", str(args.tenants), "--sites", str(args.sites)]
        cmd += ["--in-flight", str(args.in_flight)]
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.child.stdout is not None
        if self.child.stdout.readline().strip() != "ready":
            raise RuntimeError("the notifier process did not start")

    async def stop(self) -> float:
        """Tell it to stop; its CPU seconds."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("stop\n")
        self.child.stdin.flush()
        out = await asyncio.to_thread(self.child.stdout.readline)
        await asyncio.to_thread(self.child.wait)
        return float(out or "nan")


@dataclass
class Outcome:
    """What one run of the pipeline measured (times in ms since the epoch, wall clock)."""

    transitions: int
    produced_s: float
    lags: list[float]
    started: float
    ended: float  # producing
    stopped: float  # the pipeline
    drained_s: float
    samples: list[tuple[int, int]]
    left: tuple[int, int]  # journal not routed, outbox pending when told to stop
    stop_s: float  # from telling the notifier to stop to its return
    route_rest: tuple[int, float]  # the journal not routed when it returned, seconds to route
    made: int  # outbox rows, the rest of the journal routed
    journal: int
    waiting: npt.NDArray[np.float64]  # the arrival of each event in an unsent webhook
    stats: dict[str, npt.NDArray[Any]]  # the receiver's
    cpu: tuple[float, float]  # CPU seconds while producing and draining: this process, notifier's
    parts: dict[str, float]  # of this process's: in AlarmBook.apply and in Notifier.route


async def pipeline(
    reg: Registry, folder: Path, base: str, args: argparse.Namespace
) -> tuple[Outcome, float]:
    """Produce through the alarm book while the notifier routes and delivers; the outcome and
    the seconds that putting the subscriptions took."""
    db = StateDB(folder / "state.db")
    senders = Senders(smtp=SmtpSpec())
    notifier = Notifier(db, reg, senders, NotifySettings(max_in_flight=args.in_flight))
    t = time.perf_counter()
    for tenant in reg.tenants:
        for spec in subscriptions(args.sites, f"{base}/hook", args.group, args.batch):
            notifier.put("subscription", tenant, spec, "bench")
    t_put = time.perf_counter() - t
    book = AlarmBook(db, reg, compile_table(reg.sensors))
    parts = ThreadCpu()
    book.apply = parts.wrap("apply", book.apply)  # type: ignore[method-assign]
    notifier.route = parts.wrap("route", notifier.route)  # type: ignore[method-assign]
    for name in ("take_due", "texts_of", "settle"):  # delivery's SQL, on its worker threads
        setattr(notifier.store, name, parts.wrap("sql", getattr(notifier.store, name), True))
    stop = asyncio.Event()
    samples: list[tuple[int, int]] = []

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await asyncio.to_thread(backlog, db, notifier.outbox))
            await asyncio.sleep(1)

    child = NotifierProcess(folder / "state.db", args) if args.notifier_process else None
    async with httpx.AsyncClient(base_url=base, trust_env=False) as control:
        await control.post("/_reset")
        cpu = time.process_time()
        if child is None:
            running = asyncio.create_task(notifier.run(stop), name="notifier")
        sampler = asyncio.create_task(sample(), name="sampler")
        started = time.time() * 1000
        n, produced_s, lags = await produce(book, notifier, Stream(reg), args)
        ended = time.time() * 1000
        t = time.perf_counter()
        while time.perf_counter() - t < args.drain:
            if await asyncio.to_thread(backlog, db, notifier.outbox) == (0, 0):
                break
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - t
        left = await asyncio.to_thread(backlog, db, notifier.outbox)
        stop.set()
        t = time.perf_counter()
        if child is None:
            await running
            child_cpu = 0.0
        else:
            child_cpu = await child.stop()
        stop_s = time.perf_counter() - t
        cpu = time.process_time() - cpu
        cpu_parts = dict(parts.seconds)
        await sampler
        stopped = time.time() * 1000
        await senders.aclose()
        got = await control.get("/_stats", timeout=120)
        stats = dict(np.load(io.BytesIO(got.content)))
    routing = backlog(db, notifier.outbox)[0]
    t = time.perf_counter()
    while notifier.route():  # the rest of the journal into the outbox, without delivering
        pass
    route_rest_s = time.perf_counter() - t
    pending = notifier.outbox.query("SELECT events FROM outbox WHERE status = 'pending'")
    waiting = np.array([e["arrival"] for (js,) in pending for e in orjson.loads(js)], float)
    made = int(notifier.outbox.query("SELECT COUNT(*) FROM outbox")[0][0])
    journal = int(db.query("SELECT COUNT(*) FROM alarm_events")[0][0])
    notifier.close()
    db.close()
    outcome = Outcome(
        n,
        produced_s,
        lags,
        started,
        ended,
        stopped,
        drained_s,
        samples,
        left,
        stop_s,
        (routing, route_rest_s),
        made,
        journal,
        waiting,
        stats,
        (cpu, child_cpu),
        cpu_parts,
    )
    return outcome, t_put


async def run(args: argparse.Namespace, base: str) -> None:
    t = time.perf_counter()
    reg = registry(args.tenants, args.sites, 2, 25)
    t_reg = time.perf_counter() - t
    folder = Path(tempfile.mkdtemp())
    size = int(args.rate * args.tick_ms / 1000)
    alone, alone_p99 = apply_alone(reg, folder, size, args.baseline_seconds)
    raw, raw_cpu = await post_loop(f"{base}/raw", PER_HOST, args.baseline_seconds, "hub")
    hx, hx_cpu = await post_loop(f"{base}/raw", PER_HOST, args.baseline_seconds, "httpx")
    o, t_put = await pipeline(reg, folder, base, args)

    st = o.stats
    req_at, ev_at, ev_arrival = st["req_at"], st["ev_at"], st["ev_arrival"]
    distinct, bad, connections = (int(x) for x in st["counts"])
    lat = np.concatenate([ev_at - ev_arrival, o.stopped - o.waiting])
    oldest_unsent = float(np.min(o.stopped - o.waiting)) if len(o.waiting) else math.inf
    early = req_at[req_at <= o.ended]
    per_s = np.bincount(((early - o.started) // 1000).astype(int)) if len(early) else [0]
    deliveries = len(early) / o.produced_s
    rate = o.transitions / o.produced_s

    def pct(q: float) -> str:
        if not len(lat):
            return "n/a"
        v = float(np.percentile(lat, q))
        return f"{'>= ' if v >= oldest_unsent else ''}{v:,.0f} ms"

    print(
        f"setup      : {len(reg.sensors):,} sensors, {len(reg.tenants)} tenants x {args.sites} "
        f"sites ({t_reg:.1f} s); {len(reg.tenants) * 10:,} subscriptions put one by one in "
        f"{t_put:.1f} s; site subscriptions grouped {args.group:g} s; "
        f"max_in_flight {args.in_flight}"
    )
    print(
        f"producer   : {rate:9,.0f} transitions/s ({o.transitions:,} in {o.produced_s:.1f} s; "
        f"target {args.rate:,.0f}/s; batch start lag p99 {np.percentile(o.lags, 99) * 1e3:,.0f} ms)"
    )
    print(
        f"made       : {o.journal:,} journal events -> {o.made:,} webhooks "
        f"({o.made / max(o.journal, 1):.2f} per event, {o.made / o.produced_s:,.0f}/s demanded)"
    )
    print(
        f"delivered  : {len(req_at):,} webhooks ({len(ev_at):,} events; {distinct:,} distinct "
        f"keys, {bad} bad signatures, {connections:,} TCP connections); {deliveries:,.0f}/s while "
        f"producing (seconds: slowest {min(per_s):,}, fastest {max(per_s):,}), "
        f"{len(req_at) * 1000 / (o.stopped - o.started):,.0f}/s until the notifier returned "
        f"({o.drained_s + o.stop_s:.1f} s after producing)"
    )
    rest, rest_s = o.route_rest
    alone_route = f"{rest / rest_s:,.0f} events/s" if rest else "n/a"
    print(
        f"left       : {o.left[0]:,} journal events not routed and {o.left[1]:,} webhooks not "
        f"sent when told to stop; Notifier.run returned {o.stop_s:.1f} s later (routing the "
        f"{rest:,} events then left, alone: {alone_route})"
    )
    mine = f"{o.cpu[0]:.1f} s ({o.cpu[0] / o.transitions * 1e6:.0f} us per transition)"
    if args.notifier_process:
        mine += (
            f", the notifier's process {o.cpu[1]:.1f} s ({o.cpu[1] / o.transitions * 1e6:.0f} us)"
        )
    else:
        mine += " with the notifier in it"
    print(
        f"cpu        : producing and draining, this process {mine}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    if not args.notifier_process:
        n, posts, events = o.transitions, max(len(req_at), 1), max(len(ev_at), 1)
        apply_s, route_s, sql_s = o.parts["apply"], o.parts["route"], o.parts["sql"]
        rest = o.cpu[0] - apply_s - route_s - sql_s
        print(
            f"cpu parts  : per transition AlarmBook.apply {apply_s / n * 1e6:.0f} us, routing "
            f"(journal -> outbox) {route_s / n * 1e6:.0f} us, delivery's SQL (take, settle) "
            f"{sql_s / n * 1e6:.0f} us, the event loop (sending; the producer's and the "
            f"bench's own few) {rest / n * 1e6:.0f} us = {rest / posts * 1e6:.0f} us per POST "
            f"({rest / events * 1e6:.0f} per event delivered); the notifier "
            f"{(o.cpu[0] - apply_s) / n * 1e6:.0f} us per transition"
        )
    step = max(1, len(o.samples) // 10)
    trail = ", ".join(f"{j:,}/{q:,}" for j, q in o.samples[::step])
    print(f"backlog    : journal/outbox every {step} s: {trail}")
    print(
        f"latency    : transition -> webhook p50 {pct(50)}, p99 {pct(99)}, max {pct(100)} "
        f"({len(lat):,} event deliveries; the {len(o.waiting):,} unsent at their age at the end)"
    )
    print(
        f"baseline   : AlarmBook.apply alone {alone:,.0f} transitions/s (p99 {alone_p99:.0f} ms "
        f"per batch of {size:,}); ratio with the pipeline running {rate / alone:.2f}x"
    )
    print(
        f"baseline   : POST loop, {PER_HOST} in flight (the channel's most per receiver): the "
        f"hub's HTTP client {raw:,.0f} req/s ({raw_cpu:,.0f} µs CPU each), httpx {hx:,.0f} "
        f"req/s ({hx_cpu:,.0f} µs); ratio webhooks delivered/hub client {deliveries / raw:.2f}x"
    )
    p99 = float(np.percentile(lat, 99)) if len(lat) else math.inf
    met = p99 < 200 and rate >= 0.99 * args.rate
    print(
        f"target     : {args.rate:,.0f} transitions/s with p99 < 200 ms: "
        f"{'met' if met else 'NOT met'} (p99 {pct(99)} at {rate:,.0f} transitions/s)"
    )


if __name__ == "__main__":
    main()
