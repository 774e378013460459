"""The baselines `bench/notify.py` measures in the same run: `AlarmBook.apply` alone
(transitions/s without notifications) and a POST loop with the webhook channel's own HTTP
client or with httpx; and the CPU of calls made on worker threads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from alerts.alarms import AlarmBook
from alerts.notify.channels import SIGNATURE_HEADER, sign
from alerts.notify.http import HttpPool
from alerts.statedb import StateDB
from alerts.table import compile_table
from bench.notify_load import SECRET, Stream
from telemetry.registry import Registry

__all__ = ["ThreadCpu", "apply_alone", "post_loop"]


def apply_alone(reg: Registry, folder: Path, size: int, seconds: float) -> tuple[float, float]:
    """Transitions/s of `AlarmBook.apply` flat out, and the p99 ms of one batch."""
    db = StateDB(folder / "alone.db")
    book = AlarmBook(db, reg, compile_table(reg.sensors))
    stream, took, n = Stream(reg, seed=11), [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        tr = stream.next(size, 100)
        t = time.perf_counter()
        book.apply(tr, time.time_ns() // 1_000_000)
        took.append(time.perf_counter() - t)
        n += size
    db.close()
    return n / sum(took), float(np.percentile(took, 99) * 1000)


async def post_loop(url: str, in_flight: int, seconds: float, client: str) -> tuple[float, float]:
    """Requests/s of signed POSTs like a webhook's, `in_flight` at once, and the CPU µs per
    request: `client` "hub" is the webhook channel's own (`alerts.notify.http`, as `Senders`
    uses it), "httpx" the library it used before."""
    event = {"event_id": 1, "arrival": time.time_ns() // 1_000_000, "sensor": "x", "tier": "red"}
    body = orjson.dumps({"key": "k", "subscription": "t0/s", "events": [event]})
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    headers[SIGNATURE_HEADER] = sign(SECRET, body)
    done = 0
    deadline = time.perf_counter() + seconds
    pool = HttpPool()
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as hx:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if client == "hub":
                    r = await pool.post(url, body, headers, 64 * 1024)
                    done += r.status == 200
                else:
                    async with hx.stream("POST", url, content=body, headers=headers) as resp:
                        await resp.aread()
                        done += resp.status_code == 200

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
    await pool.aclose()
    return done / took, cpu / max(done, 1) * 1e6


class ThreadCpu:
    """The CPU seconds spent in some calls, each measured on the thread that makes it
    (`time.thread_time`): `AlarmBook.apply` and `Notifier.route` run in worker threads, so the
    process's CPU less theirs is the event loop's (delivery, the producer's pacing)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, call: Callable[..., Any], add: bool = False) -> Callable[..., Any]:
        """`call` timed into `name` (`add`: beside the calls wrapped into it before)."""
        if not add or name not in self.seconds:
            self.seconds[name] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - start

        return timed
