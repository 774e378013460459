"""Throughput of the alert core and the telemetry codec.

Prints readings/s of the vectorized core and of its plain-Python reference on the same data (the
baseline, measured in this run) and their ratio; and the codec's encode/decode rates.
Run: .venv/bin/python bench/core.py [--sensors N] [--readings N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# the scripts here are named like our packages: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluate import CoreState, evaluate
from alerts.reference import reference_evaluate
from alerts.table import SLOTS, compile_table
from telemetry.codec import TelemetryBatch, decode, encode
from telemetry.config import LevelSpec
from telemetry.registry import SensorInfo

METHANE = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),
)


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--reference-readings", type=int, default=50_000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    n_s, n = args.sensors, args.readings
    sensors = [
        SensorInfo(
            i, f"s{i}", "t", "site", "dev", f"k{i}", "methane", "%", "", "", "inline", METHANE
        )
        for i in range(n_s)
    ]
    table = compile_table(sensors)
    sensor = rng.integers(0, n_s, n).astype(np.int32)
    ts = np.sort(rng.integers(0, 3_600_000, n)).astype(np.int64)
    value = np.abs(rng.normal(0.8, 0.4, n))
    quality = np.zeros(n, np.uint8)

    t_vec = best(lambda: evaluate(table, CoreState.empty(n_s), sensor, ts, value, quality))
    m = args.reference_readings

    def ref() -> None:
        reference_evaluate(
            table,
            [[False] * (2 * SLOTS) for _ in range(n_s)],
            [[0, 0] for _ in range(n_s)],
            [-(2**63)] * n_s,
            sensor[:m],
            ts[:m],
            value[:m],
            quality[:m],
        )

    t_ref = best(ref, repeat=1)
    vec_rate, ref_rate = n / t_vec, m / t_ref
    print(
        f"alert core, vectorized : {vec_rate:12,.0f} readings/s ({n:,} readings, {n_s:,} sensors)"
    )
    print(f"alert core, reference  : {ref_rate:12,.0f} readings/s ({m:,} readings, baseline)")
    print(f"ratio vectorized/reference: {vec_rate / ref_rate:.1f}x")

    k = 100
    batch = TelemetryBatch(
        "gw1",
        "dev1",
        1,
        1,
        tuple(f"p{i}" for i in range(k)),
        np.arange(k, dtype=np.uint16),
        ts[:k].copy(),
        value[:k].copy(),
        quality[:k].copy(),
    )
    payload = encode(batch)
    loops = 20_000
    t_enc = best(lambda: [encode(batch) for _ in range(loops)])
    t_dec = best(lambda: [decode(payload) for _ in range(loops)])
    print(
        f"codec encode (100 readings/message): {loops * k / t_enc:12,.0f} readings/s, "
        f"{loops / t_enc:,.0f} messages/s"
    )
    print(
        f"codec decode (100 readings/message): {loops * k / t_dec:12,.0f} readings/s, "
        f"{loops / t_dec:,.0f} messages/s"
    )


if __name__ == "__main__":
    main()
