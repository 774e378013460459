"""Soak: the hub under a steady load for a long time, to show that its memory stops growing.

Debian's mosquitto and influxd on free loopback ports, `hazardhub hub` with the InfluxDB store (its
disk spool, buffers and caches at their configured limits), and `hazardhub simulate load`
publishing synthetic gateways' telemetry at a given rate, each a separate process. Every 10 s it
samples the hub's resident memory (VmRSS) and its readings counter (/metrics); at the end it
prints RSS at the start (after the warm-up), the middle and the end, the end against the middle
(the issue's bound: within 10 %), and the readings sent, judged and stored.

Run from the repository root: .venv/bin/python bench/soak.py [--minutes 30] [--rate 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from services import InfluxService, MosquittoService, free_port


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


def get(url: str, key: str | None = None, timeout_s: float = 10) -> str:
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=timeout_s) as r:  # loopback only
        return str(r.read().decode())


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stored(influx_url: str) -> int:
    q = urllib.parse.urlencode(
        {"db": "hazardhub", "q": 'SELECT count("value") FROM "reading"', "epoch": "ms"}
    )
    # counting tens of millions of points takes influxd a while, more on a busy machine
    doc = json.loads(get(f"{influx_url}/query?{q}", timeout_s=300))
    series = doc["results"][0].get("series", [])
    return int(sum(v[1] for s in series for v in s["values"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20_000, help="readings per second")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100, help="readings per message")
    ap.add_argument("--warmup", type=float, default=60, help="seconds before the first figure")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hazardhub-soak-"))
    broker = MosquittoService(work / "mosquitto")
    influx = InfluxService(work / "influx")
    broker.launch()
    influx.launch()
    key = "soak-admin-key"
    config = work / "load.yaml"
    hh = [sys.executable, "-m", "hazardhub"]
    subprocess.run(
        [
            *hh,
            "simulate",
            "load",
            *("--devices", str(args.devices), "--batch", str(args.batch)),
            "--write-config",
            str(config),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with config.open("a") as f:
        digest = hashlib.sha256(key.encode()).hexdigest()
        f.write(f"api_keys:\n  - {{name: soak, sha256: {digest}, role: admin}}\n")
    api = f"127.0.0.1:{free_port()}"
    hub = subprocess.Popen(
        [
            *hh,
            "hub",
            "-c",
            str(config),
            "--broker",
            f"{broker.host}:{broker.port}",
            *("--influx", influx.url, "--data-dir", str(work / "hub"), "--api", api),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(work / "hub.log").open("w"),
    )
    seconds = args.minutes * 60 + args.warmup
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"http://{api}/readyz").startswith("ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the hub did not become ready; see " + str(work / "hub.log"))
            time.sleep(0.5)
        load = subprocess.Popen(
            [
                *hh,
                "simulate",
                "load",
                "--broker",
                f"{broker.host}:{broker.port}",
                *("--rate", str(args.rate), "--devices", str(args.devices)),
                *("--batch", str(args.batch), "--seconds", str(seconds)),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        samples: list[tuple[float, int, float]] = []  # (t s, RSS KiB, readings judged)
        start = time.monotonic()
        print(
            f"soak: {args.rate:,.0f} readings/s for {args.minutes:g} min after "
            f"{args.warmup:g} s of warm-up; hub pid {hub.pid}",
            flush=True,
        )
        while load.poll() is None:
            time.sleep(10)
            t = time.monotonic() - start
            judged = metric(get(f"http://{api}/metrics", key), "hazardhub_readings_total")
            samples.append((t, rss_kib(hub.pid), judged))
            if len(samples) % 6 == 0:
                print(f"  {t:7.0f} s  RSS {samples[-1][1] / 1024:8.1f} MiB  judged {judged:,.0f}")
        out, _ = load.communicate()
        sent = int(re.search(r"^readings: (\d+)", out, re.M).group(1))  # type: ignore[union-attr]
        time.sleep(15)  # let the hub drain
        judged = metric(get(f"http://{api}/metrics", key), "hazardhub_readings_total")
        in_store = stored(influx.url)
    finally:
        hub.terminate()
        hub.wait(30)
        broker.stop()
        influx.stop()
    after = [s for s in samples if s[0] >= args.warmup]
    first, middle, last = after[0], after[len(after) // 2], after[-1]
    growth = (last[1] - middle[1]) / middle[1]
    print(f"readings   : sent {sent:,}, judged {judged:,.0f}, stored {in_store:,}")
    print(f"rate       : {sent / seconds:,.0f} readings/s offered")
    for label, s in (("start", first), ("middle", middle), ("end", last)):
        print(f"RSS {label:7}: {s[1] / 1024:8.1f} MiB at {s[0]:6.0f} s")
    print(f"end/middle : {growth:+.1%} (bound: within 10 %)")
    print(f"work folder: {work}")
    os.sync()


if __name__ == "__main__":
    main()
