"""Throughput of the line-protocol serializer against influxdb-client's `Point`.

Encodes the hub's reading schema (5 tags, 4 fields, ms timestamps) for N readings of S sensors
with `ingest.store.lineproto.encode_columns`, as `InfluxStore` does (5,000 lines a request), and
the same readings with influxdb-client's ``Point(...).tag().field().time().to_line_protocol()``
on a sample; prints points/s of both on one core and the ratio. Two value distributions: register
values with two decimals (what devices send: many repeats) and random doubles (worst case).

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/lineproto.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# the checkout first: bench/ingest.py would otherwise shadow the ingest package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.store.lineproto import (
    FieldColumn,
    encode_columns,
    series_key,
    series_table,
)

try:
    from influxdb_client import Point, WritePrecision
except ModuleNotFoundError:  # pragma: no cover - a bench-only dependency
    Point = None


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_data(n: int, sensors: int, quantized: bool, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_msg = 100
    sensor = np.tile(np.arange(sensors, dtype=np.int32), n // sensors + 1)[:n]
    ts = 1_790_000_000_000 + (np.arange(n, dtype=np.int64) // sensors) * 1000
    value = rng.normal(20.0, 5.0, n)
    if quantized:
        value = np.round(value, 2)
    quality = np.where(rng.random(n) < 0.001, 3, 0).astype(np.uint8)
    seq = (np.arange(n, dtype=np.int64) // per_msg).astype(np.int64)
    epoch = np.full(n, 1_790_000_000, np.int64)
    return {
        "sensor": sensor,
        "ts": ts,
        "value": value,
        "quality": quality,
        "seq": seq,
        "epoch": epoch,
    }


def tags_of(i: int) -> dict[str, str]:
    return {
        "tenant": f"tenant-{i % 7}",
        "site": f"site-{i % 31}",
        "device": f"dev-{i // 16:05d}",
        "sensor": f"s{i:06d}.ch4",
        "kind": "methane",
    }


def ours(table: np.ndarray, d: dict[str, np.ndarray], batch: int) -> int:
    total = 0
    n = d["ts"].shape[0]
    for a in range(0, n, batch):
        s = slice(a, a + batch)
        enc = encode_columns(
            table,
            d["sensor"][s],
            d["ts"][s],
            [
                FieldColumn("quality", d["quality"][s]),
                FieldColumn("epoch", d["epoch"][s]),
                FieldColumn("seq", d["seq"][s]),
                FieldColumn("value", d["value"][s], optional=True),
            ],
        )
        total += len(enc.data)
    return total


def with_point(tags: list[dict[str, str]], d: dict[str, np.ndarray], m: int) -> int:
    assert Point is not None
    total = 0
    sensor, ts = d["sensor"][:m].tolist(), d["ts"][:m].tolist()
    value, quality = d["value"][:m].tolist(), d["quality"][:m].tolist()
    epoch, seq = d["epoch"][:m].tolist(), d["seq"][:m].tolist()
    for i in range(m):
        p = Point("reading")
        for k, v in tags[sensor[i]].items():
            p.tag(k, v)
        p.field("quality", quality[i]).field("epoch", epoch[i]).field("seq", seq[i])
        p.field("value", value[i]).time(ts[i], WritePrecision.MS)
        total += len(p.to_line_protocol()) + 1
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=5_000, help="lines per encode call (a request)")
    ap.add_argument("--point-readings", type=int, default=50_000, help="sample for Point")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    tags = [tags_of(i) for i in range(args.sensors)]
    table = series_table([series_key("reading", t) for t in tags])
    print(
        f"{args.readings:,} readings of {args.sensors:,} sensors, {args.batch:,} lines a call, "
        "one core"
    )
    for quantized in (True, False):
        d = make_data(args.readings, args.sensors, quantized)
        label = "2-decimal register values" if quantized else "random doubles"
        size = ours(table, d, args.batch)
        t_ours = best(lambda d=d: ours(table, d, args.batch), args.repeat)
        rate = args.readings / t_ours
        line = (
            f"{label:27}: encode_columns {rate:13,.0f} points/s ({size / args.readings:.0f} B/line)"
        )
        if Point is not None:
            m = args.point_readings
            t_point = best(lambda d=d, m=m: with_point(tags, d, m), 1)
            prate = m / t_point
            line += f"; Point {prate:11,.0f} points/s; ratio {rate / prate:5.1f}x"
        else:
            line += "; Point: influxdb-client not installed (pip install -e '.[bench]')"
        print(line)


if __name__ == "__main__":
    main()
