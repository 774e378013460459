"""`python -m chaos.run [--short] [--report FILE]`: the chaos run of issue 10.

Two stacks play one scenario from one Modbus simulator farm and one fleet of GPS recorders
(`chaos.recorder`, publishing every position to both brokers), every part its own process on
loopback: the faulted stack (mosquitto, influxd, gateway, hub with the InfluxDB store) goes
through the fault schedule of `chaos.plan`; the baseline stack (its own mosquitto, gateway and a
hub with the embedded store) runs beside it without faults and gives the alarm timeline to match.
Afterwards every published reading and position is looked for in InfluxDB, every alarm
transition compared, and the report printed (and written as JSON). Exit 0 only when nothing is
lost or duplicated and the alarms match."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.account import (
    account_alarms,
    account_positions,
    account_readings,
    catch_up_ms,
    expected_readings,
    expected_until,
)
from chaos.collect import (
    Observer,
    fetch_alarm_events,
    influx_count_until,
    influx_positions,
    influx_readings,
)
from chaos.plan import (
    FULL,
    POLL_S,
    POSITION_PERIOD_S,
    SHORT,
    TENANT,
    VEHICLES,
    Fault,
    Plan,
    hub_config,
    point_sensors,
)
from chaos.plan import scenario_yaml as make_scenario
from chaos.procs import Proc, free_port, hazardhub_argv, http_ok, influxd, mosquitto, tcp_open
from chaos.report import render
from telemetry.clock import wall_ms

__all__ = ["main"]

log = logging.getLogger("chaos")
CATCH_UP_WINDOW_S = 120.0


@dataclass(slots=True)
class Stack:
    """One hub with its broker and gateway."""

    name: str
    broker: Proc
    hub: Proc
    gateway: Proc
    api: str


@dataclass(slots=True)
class FaultRecord:
    fault: Fault
    start_ms: int = 0
    end_ms: int = 0
    # (wall ms, readings, positions stored with event time <= end)
    samples: list[tuple[int, int, int]] = field(default_factory=list)


class Run:
    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan, self.work = plan, work
        self.key = secrets.token_urlsafe(24)
        taken: set[int] = set()
        self.modbus_port = free_port(taken)
        ports = {n: free_port(taken) for n in ("mq_a", "mq_b", "ix", "ix_rpc", "api_a", "api_b")}
        self.config = work / "config.yaml"
        self.config.write_text(hub_config(self.modbus_port, self.key))
        self.scenario = work / "scenario.yaml"
        self.scenario.write_text(make_scenario(plan))
        self.truth = work / "truth.json"
        self.fleet_status = work / "recorder.json"
        self.influx = influxd(work / "influxd", ports["ix"], ports["ix_rpc"])
        self.influx_url = f"http://127.0.0.1:{ports['ix']}"
        self.sim = Proc(
            "simulator",
            hazardhub_argv(
                "simulate", "modbus", "-c", str(self.config), "--scenario", str(self.scenario),
                "--record", str(self.truth),
            ),
            work / "simulator.log",
            lambda: tcp_open(self.modbus_port),
        )  # fmt: skip
        self.a = self._stack("a", ports["mq_a"], ports["api_a"], influx=True)
        self.b = self._stack("b", ports["mq_b"], ports["api_b"], influx=False)
        self.recorder = Proc("recorder", [], work / "recorder.log", lambda: True)
        self.mq_ports = (ports["mq_a"], ports["mq_b"])
        self.observer = Observer(ports["mq_a"])
        self.faults = [FaultRecord(f) for f in plan.faults]
        self.t0 = 0.0  # wall seconds of scenario time 0

    def _stack(self, name: str, mq: int, api: int, *, influx: bool) -> Stack:
        folder = self.work / name
        folder.mkdir()
        broker = mosquitto(folder / "mosquitto", mq)
        hub_args = [
            "hub", "-c", str(self.config), "--broker", f"127.0.0.1:{mq}",
            "--data-dir", str(folder / "hub"), "--api", f"127.0.0.1:{api}",
        ]  # fmt: skip
        if influx:
            hub_args += ["--influx", self.influx_url]
        readyz = f"http://127.0.0.1:{api}/readyz"
        hub = Proc("hub", hazardhub_argv(*hub_args), folder / "hub.log", lambda: http_ok(readyz))
        gateway = Proc(
            "gateway",
            hazardhub_argv(
                "gateway", "-c", str(self.config), "--tenant", TENANT, "--gateway", "gw1",
                "--broker", f"127.0.0.1:{mq}", "--spool-dir", str(folder / "spool"),
            ),
            folder / "gateway.log",
            lambda: True,
        )  # fmt: skip
        return Stack(name, broker, hub, gateway, f"http://127.0.0.1:{api}")

    def procs(self) -> list[Proc]:
        a, b = self.a, self.b
        return [
            *(a.gateway, b.gateway, self.recorder, self.sim),
            *(a.hub, b.hub, a.broker, b.broker, self.influx),
        ]

    async def _at(self, t_s: float) -> None:
        delay = self.t0 + t_s - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault(self, rec: FaultRecord) -> None:
        f, a = rec.fault, self.a
        await self._at(f.at_s)
        rec.start_ms = wall_ms()
        log.info("t=%.0fs fault: %s (%.0f s)", f.at_s, f.kind, f.down_s)
        if f.kind in ("gateway", "hub", "influxd"):
            proc = {"gateway": a.gateway, "hub": a.hub, "influxd": self.influx}[f.kind]
            proc.kill()
            await asyncio.sleep(f.down_s)
            await asyncio.to_thread(proc.start)
        else:  # mosquitto restarted; the link cut: mosquitto away for down_s
            await asyncio.to_thread(a.broker.stop)
            await asyncio.sleep(f.down_s)
            await asyncio.to_thread(a.broker.start)
        rec.end_ms = wall_ms()

    async def _monitor(self, stop: asyncio.Event) -> None:
        """After each fault: how many readings and positions up to its end InfluxDB has, every
        0.5 s."""
        async with httpx.AsyncClient(base_url=self.influx_url, timeout=2) as client:
            while not stop.is_set():
                now = wall_ms()
                for rec in self.faults:
                    if rec.end_ms and now - rec.end_ms < CATCH_UP_WINDOW_S * 1000:
                        with contextlib.suppress(httpx.HTTPError, RuntimeError):
                            n_read, n_pos = await influx_count_until(client, rec.end_ms)
                            rec.samples.append((wall_ms(), n_read, n_pos))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)

    async def _settle(self, expected: tuple[int, int], timeout_s: float) -> tuple[int, int]:
        """Wait until InfluxDB holds the `expected` readings and positions or stops growing for
        10 s."""
        deadline = time.monotonic() + timeout_s
        last, last_change = (-1, -1), time.monotonic()
        async with httpx.AsyncClient(base_url=self.influx_url, timeout=5) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, RuntimeError):
                    n = await influx_count_until(client, wall_ms() + 86_400_000)
                    if n[0] >= expected[0] and n[1] >= expected[1]:
                        return n
                    if n != last:
                        last, last_change = n, time.monotonic()
                if time.monotonic() - last_change > 10:
                    break
                await asyncio.sleep(0.5)
        return last

    async def execute(self) -> dict[str, object]:
        a, b = self.a, self.b
        started = time.monotonic()
        # at once, each waiting for its readiness (one after another, the hubs' starts were
        # seconds each of the run): the brokers and influxd, then the hubs that use them
        for group in ((a.broker, b.broker, self.influx), (a.hub, b.hub)):
            await asyncio.gather(*(asyncio.to_thread(p.start) for p in group))
        stop_obs = asyncio.Event()
        obs = asyncio.create_task(self.observer.run(stop_obs), name="observer")
        await asyncio.wait_for(self.observer.subscribed.wait(), 10)
        await asyncio.to_thread(self.sim.start)
        t0_ms = int(json.loads(self.truth.read_text())["start_wall_ms"])
        self.t0 = t0_ms / 1000
        self.recorder.argv = [
            *(sys.executable, "-m", "chaos.recorder", "-c", str(self.config)),
            *("--scenario", str(self.scenario), "--t0-ms", str(t0_ms)),
            *(
                f"--broker=a=127.0.0.1:{self.mq_ports[0]}",
                f"--broker=b=127.0.0.1:{self.mq_ports[1]}",
            ),
            *("--period", str(POSITION_PERIOD_S), "--status", str(self.fleet_status)),
        ]
        await asyncio.to_thread(self.recorder.start)
        await asyncio.gather(*(asyncio.to_thread(gw.start) for gw in (a.gateway, b.gateway)))
        log.info("all processes up in %.1f s; plan %s", time.monotonic() - started, self.plan.name)
        stop_mon = asyncio.Event()
        mon = asyncio.create_task(self._monitor(stop_mon), name="catch-up-monitor")
        # each fault on its own clock: a gateway kill may fall inside the link cut
        await asyncio.gather(*(self._fault(rec) for rec in self.faults))
        await self._at(self.plan.end_s)
        codes = {}
        for s in (a, b):
            codes[f"gateway-{s.name}"] = await asyncio.to_thread(s.gateway.stop, signal.SIGINT)
        codes["recorder"] = await asyncio.to_thread(self.recorder.stop, signal.SIGINT)
        await asyncio.sleep(1.0)  # the observer takes the last batches
        sensors = point_sensors()
        expected = expected_readings(self.observer.batches, sensors)
        published = self.observer.positions
        settled = await self._settle((len(expected), len(published)), 60)
        log.info(
            "store holds %d of %d published readings, %d of %d positions",
            settled[0], len(expected), settled[1], len(published),
        )  # fmt: skip
        await asyncio.sleep(2.0)  # the hubs judge what they stored
        stop_mon.set()
        await mon
        stop_obs.set()
        obs.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await obs
        rows = await influx_readings(self.influx_url)
        position_rows = await influx_positions(self.influx_url)
        seen = await fetch_alarm_events(a.api, self.key)
        want = await fetch_alarm_events(b.api, self.key)
        for s in (a, b):
            codes[f"hub-{s.name}"] = await asyncio.to_thread(s.hub.stop, signal.SIGINT)
        speed = {f"{v}.speed": v for v in VEHICLES}
        readings = account_readings(
            self.observer.batches, sensors, [r for r in rows if r[0] not in speed]
        )
        fleet = json.loads(self.fleet_status.read_text()) if self.fleet_status.exists() else {}
        positions = account_positions(
            [(str(v), int(t), int(q)) for v, t, q in fleet.get("recorded", [])],
            published,
            position_rows,
            [(speed[s], t, q) for s, t, _, q in rows if s in speed],
        )
        tolerance = int(POLL_S * 1000) + 100
        alarms = account_alarms(want, seen, tolerance)
        faults = []
        for rec in self.faults:
            need = expected_until(expected.keys(), rec.end_ms)
            need_pos = expected_until(published.keys(), rec.end_ms)
            ms = catch_up_ms(rec.samples, need, need_pos, rec.end_ms)
            ms_pos = catch_up_ms(rec.samples, 0, need_pos, rec.end_ms)
            faults.append(
                {
                    "kind": rec.fault.kind,
                    "at_s": rec.fault.at_s,
                    "down_s": round((rec.end_ms - rec.start_ms) / 1000, 1),
                    "readings_before_end": need,
                    "positions_before_end": need_pos,
                    "catch_up_s": None if ms is None else round(ms / 1000, 1),
                    "positions_catch_up_s": None if ms_pos is None else round(ms_pos / 1000, 1),
                }
            )
        worst = [f["catch_up_s"] for f in faults]
        ok_codes = all(c == 0 for c in codes.values())
        passed = (
            readings.sent > 0
            and alarms.expected > 0  # the scenario's alarms happened: nothing vacuous
            and readings.lost == 0
            and readings.duplicated == 0
            and readings.unexpected == 0
            and positions.sent > 0
            and positions.recorded > 0
            and alarms.fleet_expected > 0
            and positions.not_sent == 0
            and positions.lost == 0
            and positions.duplicated == 0
            and positions.unexpected == 0
            and positions.altered == 0
            and alarms.ok
            and None not in worst
            and ok_codes
        )
        return {
            "plan": self.plan.name,
            "passed": passed,
            "duration_s": round(time.monotonic() - started, 1),
            "readings": readings.as_dict(),
            "positions": {**positions.as_dict(), "recorder": fleet.get("uplinks", {})},
            "alarms": {
                **alarms.as_dict(),
                "expected_timeline": [
                    {**e.as_dict(), "t_s": round(e.ts / 1000 - self.t0, 2)} for e in want
                ],
                "seen_timeline": [
                    {**e.as_dict(), "t_s": round(e.ts / 1000 - self.t0, 2)} for e in seen
                ],
            },
            "faults": faults,
            "longest_catch_up_s": max((w for w in worst if w is not None), default=None),
            "observer": {
                "messages": self.observer.messages,
                "undecodable": self.observer.undecodable,
            },
            "exit_codes": codes,
            "workdir": str(self.work),
        }

    def shutdown(self) -> None:
        for p in self.procs():
            sig = signal.SIGINT if p.name in ("hub", "gateway", "simulator", "recorder") else None
            p.stop(sig or signal.SIGTERM)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    p.add_argument("--short", action="store_true", help="the ~2 min form for CI")
    p.add_argument("--report", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s chaos: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    plan = SHORT if args.short else FULL
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="chaos-", dir=args.workdir))
    else:
        work = Path(tempfile.mkdtemp(prefix="hazardhub-chaos-"))
    run = Run(plan, work)
    try:
        report = asyncio.run(run.execute())
    except Exception:
        log.exception("the chaos run broke off; logs and data: %s", work)
        return 2
    finally:
        run.shutdown()
    print(render(report))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    passed = bool(report["passed"])
    if passed and not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs and data: {work}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
