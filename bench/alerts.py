"""Throughput of the alert core with the full semantics on, against its plain-Python reference.

100,000 sensors (methane two-level rules with on/off delays and N-in-a-row on some, LEL detectors
in 2-of-3 voting groups, no-data timeouts, a rate of rise on every methane sensor, power-cut
verification on some faces), batches of
100,000 readings with mixed qualities (faults, comm loss, calibration) and some out-of-order
times. Prints, from one run: the vectorized readings/s on one core (judged in place, as the hub
does; the first batch meets a fresh state), the reference's readings/s on
a prefix of the same stream and the ratio, p50/p99 of 10,000-reading batches (with the state
copied, and in place as the hub judges), and the state bytes per sensor (and by field of
`CoreState`); the rates and in-place
latencies also in CPU time (process_time), steadier on a machine shared with other work.
`--lateness-s` turns the lateness window on (`alerts.lateness`; default off, as in the hub): the
out-of-order readings are then rewound instead of counted late.

Run from the repository root: .venv/bin/python -m bench.alerts [--sensors N] [--batch N] ...
(as a module: run as a file, this file's name would hide the `alerts` package)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

# the scripts here are named like our packages: the checkout goes first on the import path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.evaluate import CoreState, Readings, evaluate
from alerts.reference import ReferenceCore
from alerts.table import compile_table
from telemetry.config import LevelSpec, RateSpec, VerifySpec
from telemetry.quality import Quality
from telemetry.registry import SensorInfo

METHANE = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),
)
METHANE_HELD = (
    LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0, on_delay_s=2, on_samples=2),
    LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0, off_delay_s=5),
)
LEL = (
    LevelSpec(name="level1", tier="yellow", above=25, recover=23),
    LevelSpec(name="level2", tier="red", above=50, recover=45),
)
AREA = (LevelSpec(name="area_level2", tier="red", above=2, recover=2),)


def build(n: int) -> list[SensorInfo]:
    """A quarter LEL detectors in groups of three, the rest methane with a rate of rise; 1 %
    verify a feed."""
    infos: list[SensorInfo] = []
    n_lel = (n // 4) // 3 * 3
    for i in range(n):
        if i < n_lel:
            levels, kind = LEL, "flammable_gas"
        else:
            levels, kind = (METHANE_HELD if i % 2 else METHANE), "methane"
        infos.append(
            SensorInfo(i, f"s{i}", "t", "site", "dev", f"k{i}", kind, "", "", "", "r", levels, 60.0)
        )
    # the methane sensors also watch their rate of rise (0.3 %/min over a minute)
    rate = RateSpec(per_min=0.3, window_s=60)
    for i in range(n_lel, n):
        infos[i] = dataclasses.replace(infos[i], rate=rate)
    for i in range(n_lel, n - 1, 100):  # every 100th methane sensor demands its neighbour's feed
        spec = VerifySpec(sensor=f"s{i + 1}", expect_below=0.5, within_s=2)
        infos[i] = dataclasses.replace(infos[i], verify=spec)
    for g in range(n_lel // 3):
        members = (3 * g, 3 * g + 1, 3 * g + 2)
        infos.append(
            SensorInfo(
                len(infos),
                f"g{g}",
                "t",
                "site",
                "",
                f"group:g{g}",
                "other",
                "",
                "",
                "vote",
                "vote",
                AREA,
                None,
                None,
                members,
                1,
            )
        )
    return infos


def stream(
    rng: np.random.Generator, n_sensors: int, n: int, t0: int, stress: bool = False
) -> Readings:
    """One batch: ~1 reading per sensor per second, 0.5 % faults, 0.5 % comm loss, 0.2 %
    calibration, 1 % of the times up to 3 s early (out of order). Values stay mostly below the
    thresholds (a few excursions), or hover around them with `stress` (~25 % transitions)."""
    sensor = rng.integers(0, n_sensors, n).astype(np.int32)
    ts = t0 + np.sort(rng.integers(0, 1000 * max(1, n // n_sensors), n)).astype(np.int64)
    early = rng.random(n) < 0.01
    ts[early] -= rng.integers(0, 3000, int(early.sum()))
    lel = sensor < (n_sensors // 4) // 3 * 3
    if stress:
        value = np.where(lel, np.abs(rng.normal(15, 12, n)), np.abs(rng.normal(0.7, 0.45, n)))
    else:
        value = np.where(lel, np.abs(rng.normal(5, 6, n)), np.abs(rng.normal(0.3, 0.22, n)))
    u = rng.random(n)
    quality = np.full(n, Quality.GOOD, np.uint8)
    quality[u < 0.012] = Quality.CALIBRATION
    quality[u < 0.010] = Quality.COMM_LOSS
    quality[u < 0.005] = Quality.SENSOR_FAULT
    value[quality == Quality.COMM_LOSS] = np.nan
    return Readings(sensor, ts, value, quality)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--reference-readings", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000, help="readings per latency batch")
    ap.add_argument("--small-batches", type=int, default=300)
    ap.add_argument("--stress", action="store_true", help="values around the thresholds")
    ap.add_argument("--lateness-s", type=float, default=0.0, help="lateness window (0: none)")
    ap.add_argument("--late-depth", type=int, default=8, help="readings kept to rewind")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rng = np.random.default_rng(7)
    infos = build(args.sensors)
    table = compile_table(
        infos, lateness_ms=round(args.lateness_s * 1000), late_depth=args.late_depth
    )
    n_all = len(infos)
    t0 = 1_700_000_000_000
    batches = [
        stream(rng, args.sensors, args.batch, t0 + k * 1000, args.stress)
        for k in range(args.batches)
    ]

    state = CoreState.empty(n_all)
    n_tr = n_late = n_rewound = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    for k, b in enumerate(batches):
        state, tr, outcome = evaluate(table, b, state, t0 + (k + 1) * 1000 + 500, inplace=True)
        n_tr += len(tr)
        n_late += outcome.late
        n_rewound += outcome.rewound
    t_vec, c_vec = time.perf_counter() - start, time.process_time() - cpu0
    total = args.batch * args.batches
    vec_rate = total / t_vec

    ref = ReferenceCore(table)
    m = args.reference_readings
    b0 = batches[0]
    start, cpu0 = time.perf_counter(), time.process_time()
    for lo in range(0, m, 10_000):
        hi = min(m, lo + 10_000)
        ref.evaluate(b0.sensor[lo:hi], b0.ts[lo:hi], b0.value[lo:hi], b0.quality[lo:hi], t0 + 1500)
    t_ref, c_ref = time.perf_counter() - start, time.process_time() - cpu0
    ref_rate = m / t_ref

    def ms(xs: list[float], q: float) -> float:
        return float(np.percentile(np.array(xs) * 1000, q))

    lat_copy, lat_inplace, cpu_inplace = [], [], []
    # the latency batches go on in event time from the last large batch, and the in-place ones
    # from the last of these: a jump (they were 10,000 s later) left every sensor silent past
    # its no-data timeout at a phase's start, a storm of no-data alarms raised and cleared in
    # its first batches that the steady state never sees
    t_small = t0 + (args.batches + 1) * 1000
    span = args.small_batches * 1000
    small = [
        stream(rng, args.sensors, args.small, t_small + k * 1000, args.stress)
        for k in range(args.small_batches)
    ]
    for k, b in enumerate(small):
        now = t_small + (k + 1) * 1000
        t = time.perf_counter()
        state, _, _ = evaluate(table, b, state, now)
        lat_copy.append(time.perf_counter() - t)
    for k, b in enumerate(small):
        now = t_small + span + (k + 1) * 1000
        shifted = Readings(b.sensor, b.ts + span, b.value, b.quality)
        t, c = time.perf_counter(), time.process_time()
        state, _, _ = evaluate(table, shifted, state, now, inplace=True)
        lat_inplace.append(time.perf_counter() - t)
        cpu_inplace.append(time.process_time() - c)

    print(f"sensors: {args.sensors:,} (+{n_all - args.sensors:,} voting groups), "
          f"verify plans: {len(table.verify):,}, delays: {table.has_delays}")  # fmt: skip
    print(
        f"vectorized : {vec_rate:14,.0f} readings/s "
        f"({args.batches} batches of {args.batch:,} in place; {n_tr:,} transitions)"
    )
    print(
        f"lateness   : window {args.lateness_s:g} s, {table.late_depth} readings kept; "
        f"{n_late:,} late, {n_rewound:,} rewound"
    )
    print(f"reference  : {ref_rate:14,.0f} readings/s ({m:,} readings, same stream, same run)")
    print(f"ratio      : {vec_rate / ref_rate:14,.1f}x")
    print(
        f"CPU time   : vectorized {total / c_vec:,.0f} readings/s, reference {m / c_ref:,.0f}/s, "
        f"ratio {(total / c_vec) / (m / c_ref):,.1f}x; {args.small:,}-reading batch in place "
        f"p50 {ms(cpu_inplace, 50):.2f} ms, p99 {ms(cpu_inplace, 99):.2f} ms (steadier when the "
        "machine is shared)"
    )
    print(
        f"{args.small:,}-reading batch: p50 {ms(lat_copy, 50):.2f} ms, "
        f"p99 {ms(lat_copy, 99):.2f} ms (state copied); "
        f"p50 {ms(lat_inplace, 50):.2f} ms, p99 {ms(lat_inplace, 99):.2f} ms (in place, as the hub)"
    )
    print(f"state      : {state.nbytes / n_all:.0f} bytes per sensor ({state.nbytes:,} bytes)")
    fields = sorted(
        ((getattr(state, f).nbytes / n_all, f) for f in state.__dataclass_fields__),
        reverse=True,
    )
    print("  by field : " + ", ".join(f"{f} {b:.1f}" for b, f in fields if b))


if __name__ == "__main__":
    main()
