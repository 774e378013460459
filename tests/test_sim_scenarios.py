"""Simulators as a product: the farm read by plain Modbus clients, determinism, the load
generator, and every shipped scenario run through the hub against its ground truth."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from hazardhub.settings import load
from simulators.fleet import SimulatedVehicle
from simulators.load import LoadGenerator, config_yaml
from simulators.scenario import demo_point_signals
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.config import HubConfig
from telemetry.registry import parse_document

from e2e_helpers import play
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
SCENARIOS = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
CRANE = ROOT / "examples" / "crane.yaml"
# (scenario, the configuration it plays against): the demo's, and the crane example's
SHIPPED = [(p, DEMO) for p in SCENARIOS] + [
    (p, CRANE) for p in sorted((ROOT / "examples" / "scenarios" / "crane").glob("*.yaml"))
]


def scenario(path: Path) -> ScenarioSpec:
    return parse_document(path.read_text(), ScenarioSpec, str(path))


def test_same_seed_same_truth_other_seed_other_noise():
    reg = load(DEMO).registry()
    spec = scenario(ROOT / "examples" / "scenarios" / "tank-farm-leak.yaml")
    a = compile_scenario(spec, reg).truth(1.0)
    b = compile_scenario(spec, reg).truth(1.0)
    c = compile_scenario(spec.model_copy(update={"seed": 99}), reg).truth(1.0)
    assert a == b
    assert a["gd-101a"] != c["gd-101a"]  # a noisy baseline
    assert a["gd-102a"] == c["gd-102a"]  # a noiseless ramp
    # the ramp: 2 %LEL until 20 s, 40 %LEL at 60 s
    values = dict(a["gd-102a"])
    assert values[10.0] == 2 and values[40.0] == pytest.approx(21.0) and values[60.0] == 40


def test_the_demo_signals_drive_every_point_the_demo_reads():
    """`hazardhub demo` drives each point a sensor of the demo reads (a point without a signal
    holds 0: the interlock's flags, once the word `state` alone was driven)."""
    signals = demo_point_signals()
    for dev in load(DEMO).registry().devices.values():
        assert {p.name for p in dev.points} <= set(signals[dev.spec.id]), dev.spec.id


@pytest.mark.parametrize(
    ("name", "trip", "reset"), [("tank-overfill", 75, 130), ("tank-farm-leak", 68, 120)]
)
def test_the_demo_interlock_trips_on_its_flag(name, trip, reset):
    """The demo's SIS loop is judged on its flags (`sis-inlet-trip`, `sis-inlet-bypass`): the
    scenarios trip it by its `tripped` bit, not the word `state` no demo sensor reads."""
    reg = load(DEMO).registry()
    compiled = compile_scenario(scenario(ROOT / "examples" / "scenarios" / f"{name}.yaml"), reg)
    assert [e.point for e in compiled.spec.events if e.device == "sis-1"] == ["tripped"] * 2
    trip_at = compiled.first_crossing("sis-inlet-trip", 1.0)
    assert trip_at is not None and abs(trip_at - trip) < 0.05
    assert compiled.value("sis-inlet-trip", reset + 1) == 0
    assert compiled.first_crossing("sis-inlet-bypass", 1.0) is None  # never bypassed
    # the oracle of the run through the hub: one red trip, raised and cleared
    want = [w for w in expected_transitions(compiled, reg, 0.05) if w[0].startswith("sis-")]
    assert [(s, lv) for s, _, lv in want] == [("sis-inlet-trip", 1), ("sis-inlet-trip", 0)]
    assert reg.sensor("sis-inlet-trip").levels[0].tier == "red"


@pytest.mark.slow
async def test_farm_read_by_plain_pymodbus_and_mbpoll(tmp_path):
    ports = {15021: free_port(), 15022: free_port(), 15023: free_port(), 15024: free_port()}
    text = DEMO.read_text()
    for old, new in ports.items():
        text = text.replace(f"port: {old},", f"port: {new},")
    cfg = tmp_path / "farm.yaml"
    cfg.write_text(text)
    scn = tmp_path / "ramp.yaml"
    scn.write_text(
        "name: ramp\nduration_s: 600\nevents:\n"
        "  - {at_s: 0, device: kj-sub-3, point: ch4_t1, to: 6.0, over_s: 600}\n"
        "  - {at_s: 0, device: tank1-rtu, point: level, to: 9.0, over_s: 600}\n"
    )
    record = tmp_path / "truth.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hazardhub",
            "simulate",
            "modbus",
            "-c",
            str(cfg),
            "--scenario",
            str(scn),
            "--record",
            str(record),
            "--duration",
            "30",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("modbus 127.0.0.1:"), line
        start = json.loads(record.read_text())["start_wall_ms"] / 1000
        truth = compile_scenario(scenario(scn), load(cfg, [ROOT / "profiles"]).registry())
        client = AsyncModbusTcpClient("127.0.0.1", port=ports[15024])
        await client.connect()
        for _ in range(3):
            rr = await client.read_input_registers(1, count=1, device_id=1)  # ch4_t1, 0.01 %
            t = time.time() - start
            assert abs(rr.registers[0] / 100 - truth.value("face1301-ch4-t1", t)) <= 0.02
            await asyncio.sleep(0.5)
        rr = await client.read_holding_registers(0, count=2, device_id=1)
        client.close()
        client = AsyncModbusTcpClient("127.0.0.1", port=ports[15021])
        await client.connect()
        rr = await client.read_holding_registers(0, count=2, device_id=1)  # T-101 level float32
        client.close()
        level = np.frombuffer(np.array(rr.registers, ">u2").tobytes(), ">f4")[0]
        assert abs(level - truth.value("t101-level", time.time() - start)) < 0.05
        mbpoll = shutil.which("mbpoll")
        if mbpoll:
            out = subprocess.run(
                [
                    mbpoll,
                    "-m",
                    "tcp",
                    "-a",
                    "1",
                    "-t",
                    "3",
                    "-r",
                    "2",
                    "-c",
                    "1",
                    "-1",
                    "-p",
                    str(ports[15024]),
                    "127.0.0.1",
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            raw = int(out.split("[2]:")[1].split()[0])
            assert abs(raw / 100 - truth.value("face1301-ch4-t1", time.time() - start)) <= 0.02, out
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def expected_transitions(compiled, registry, step_s: float) -> list[tuple[str, float, int]]:
    """An independent oracle: the levels above of each sensor (hysteresis, and on/off delays
    where the rule has them) applied to the true values; (sensor, scenario time, level)."""
    out = []
    times = np.arange(0, compiled.spec.duration_s, step_s)
    for sid in compiled.sensors:
        info = registry.sensor(sid)
        levels = [lv for lv in info.levels if lv.above is not None]
        if not levels:
            continue
        active = [False] * len(levels)
        since: list[float | None] = [None] * len(levels)
        current = 0
        for t in times:
            v = compiled.value(sid, t)
            for j, lv in enumerate(levels):
                want = v >= lv.above if not active[j] else not v < lv.recover
                delay = getattr(lv, "on_delay_s", 0.0) if want else getattr(lv, "off_delay_s", 0.0)
                if want == active[j]:
                    since[j] = None
                    continue
                since[j] = t if since[j] is None else since[j]
                if t - since[j] >= delay:
                    active[j], since[j] = want, None
            level = max((j + 1 for j, on in enumerate(active) if on), default=0)
            if level != current:
                out.append((sid, float(t), level))
                current = level
    return sorted(out, key=lambda r: (r[0], r[1]))


@pytest.mark.slow
@pytest.mark.parametrize(("path", "config"), SHIPPED, ids=[p.stem for p, _ in SHIPPED])
async def test_shipped_scenario_through_the_hub(path, config, mosquitto, tmp_path):
    accel, poll_s = 20.0, 0.1
    reg0 = load(config).registry()
    compiled = compile_scenario(scenario(path), reg0)
    played = await play(
        compiled, config, mosquitto.port, tmp_path, accel=accel, poll_s=poll_s, fleet=True
    )
    # action_failed (side 4): a protective action was not confirmed in time
    failures = [(sensor, t) for sensor, side, t in played.alarms if side == 4]
    # process levels above (side 0); faults and no-data are judged elsewhere
    got = [(e[0], e[4], e[6]) for e in played.events if e[1] == 0]
    got.sort(key=lambda g: (g[0], g[1]))
    tolerance = poll_s * accel + 1.0  # one poll period (in scenario time) and quantisation
    truth = _sampled(played, expected_transitions(compiled, reg0, step_s=0.05), tolerance)
    assert truth, "a shipped scenario must make alarms"
    want = _matched(got, truth, tolerance)
    for (s, tg, lv), (_, tw, _) in zip(got, want, strict=True):
        # judged by event time: at the first reading that showed it. A gateway's polls late on
        # a loaded machine (0.7 s of wall time is 14 s of the scenario's) put that reading
        # later than one poll period, never the alarm later than that reading
        shown = _first_reading_after(played, s, tw - tolerance)
        assert shown < math.inf, (s, lv, "no reading of it stored")
        # a reading is stamped when its request is sent: a stall of the loop the farm shares
        # (3.5 s of the scenario's for 175 ms of wall time) serves it later, a newer value
        early = tolerance + played.stall(tg, tw)
        assert tw - early <= tg <= max(tw, shown) + tolerance, (s, lv, tg, tw, shown, early)
    # the deadline runs from the event time the hub raised the level at (the reading that
    # showed it, late on a loaded machine); the failure is known at the feed's first reading
    # past it
    want_failures = expected_action_failures(compiled, reg0, got, accel)
    assert [s for s, _ in failures] == [s for s, _ in want_failures]
    for (s, tg), (_, tw) in zip(failures, want_failures, strict=True):
        feed = reg0.sensor(s).verify.sensor
        shown = _first_reading_after(played, feed, tw)
        assert shown < math.inf, (s, feed, "no reading of the feed stored past the deadline")
        assert tw - tolerance <= tg <= shown + tolerance, (s, tg, tw, shown)


def _sampled(played, want, tolerance: float):
    """`want`, each with whether the hub must show it: a level it stored a reading of a
    tolerance or more inside its span (from when it was reached to the sensor's next
    transition: that reading showed it whatever the poll's timing, a stall's newer value and
    the register's quantisation). Without one (a gateway's polls
    stalled on a loaded machine: at 20x, half a second of wall time is a methane ramp's whole
    band from 1.0 to 1.5 %, and the hub rightly went from normal straight to the power-cut
    level) the hub may show it or not, but only with a reading near its edges; with no stored
    reading from a tolerance before it to the next transition it is left out."""
    out = []
    for i, (s, t, lv) in enumerate(want):
        nxt = next((w[1] for w in want[i + 1 :] if w[0] == s), math.inf)
        if _first_reading_after(played, s, t - tolerance) < nxt:
            shown = _first_reading_after(played, s, t + tolerance) < nxt - tolerance
            out.append((s, t, lv, shown))
    return out


def _matched(got, want, tolerance: float):
    """`want` as the hub's transitions `got` follow it, in order: a level the hub need not show
    (`_sampled`) or one the truth held for less than `tolerance` (a poll period: the crane's
    load falling from overload through the alarm band to the pre-warning in 0.13 s of wall time
    at 20x) may be missing from `got`, a stalled poll having skipped it; any other difference
    fails."""
    out, i = [], 0
    for k, (s, t, lv, shown) in enumerate(want):
        if i < len(got) and got[i][0] == s and got[i][2] == lv:
            out.append((s, t, lv))
            i += 1
            continue
        nxt = next((w[1] for w in want[k + 1 :] if w[0] == s), math.inf)
        assert not shown or nxt - t < tolerance, ("missing", (s, lv, t), got[i : i + 3])
    assert i == len(got), ("unexpected", got[i:], want)
    return out


def _first_reading_after(played, sensor: str, t: float) -> float:
    """The scenario time of the first reading of `sensor` the hub stored at or after `t`."""
    times = [played.scenario_s(ts) for ts in played.stored.get(sensor, ())]
    return min((x for x in times if x >= t), default=math.inf)


def _cut(compiled, spec, x: float) -> bool:
    """Every feedback sensor of the verification confirms the action at scenario time x."""
    values = [compiled.value(feed, x) for feed in (spec.sensor, *spec.also)]
    if spec.expect_below is not None:
        return all(v < spec.expect_below for v in values)
    return all(v > spec.expect_above for v in values)


def expected_action_failures(
    compiled, registry, transitions, accel: float
) -> list[tuple[str, float]]:
    """(sensor, scenario time) of every protective action the truth does not confirm in time:
    the deadline is the event time at which the verified level was reached plus `within_s` of
    wall time (event times are wall times), i.e. `within_s * accel` of scenario time."""
    out = []
    for sid, t, level in transitions:
        info = registry.sensor(sid)
        spec = info.verify
        if spec is None:
            continue
        above = [lv for lv in info.levels if lv.above is not None]
        target = next((i + 1 for i, lv in enumerate(above) if lv.name == spec.level), len(above))
        if level != target:
            continue
        window = spec.within_s * accel
        samples = np.arange(t, t + window + 1e-9, 0.05)

        confirmed = any(_cut(compiled, spec, x) for x in samples)
        if not confirmed:
            out.append((sid, t + window))
    return out


async def test_load_generator_rate_and_matching_config(mosquitto, tmp_path):
    cfg = parse_document(config_yaml(4, 10), HubConfig, "load.yaml")
    assert len(cfg.tenants[0].sites[0].devices) == 4
    got = 0

    async def count() -> None:
        nonlocal got
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe("hazardhub/v1/load/load/+/telemetry", qos=1)
            async for _ in client.messages:
                got += 1

    counter = asyncio.create_task(count())
    await asyncio.sleep(0.3)
    gen = LoadGenerator("127.0.0.1", mosquitto.port, rate=5000, devices=4, batch=10)
    report = await asyncio.to_thread(gen.run, 2.0)
    deadline = asyncio.get_running_loop().time() + 10  # a busy machine delivers late, not less
    while got < report.messages and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # and nothing more than was sent
    counter.cancel()
    assert report.messages == got  # every message sent arrived
    assert report.readings == 10 * report.messages
    # 5,000 readings/s for 2 s: 1,000 messages of 10, within the rate's tolerance on a busy machine
    assert 900 <= report.messages <= 1000
    # paced at the rate asked, second by second (a loaded machine stretches the last one: the
    # rate over the whole run, 4,333/s for 970 messages in 2.24 s, said nothing of the pace)
    assert report.per_second and all(
        math.isclose(n, 5000, rel_tol=0.1) for n in report.per_second
    ), report


def test_gps_noise_is_deterministic_and_drift_jumps():
    from simulators.signals import Constant

    def fresh() -> SimulatedVehicle:
        return SimulatedVehicle("t", "v", ((32.0, 118.8), (32.0, 119.8)), Constant(72.0), seed=3)

    a, b = fresh(), fresh()
    ra = [a.record(t, 0) for t in range(5)]
    assert ra == [b.record(t, 0) for t in range(5)]
    quiet = fresh()
    quiet.noise_m = 0
    exact = [quiet.record(t, 0) for t in range(5)]
    offsets = [abs(r["lat"] - e["lat"]) * 111_320 for r, e in zip(ra, exact, strict=True)]
    assert 0 < max(offsets) <= 3.5  # metres of noise
    c = fresh()
    c.noise_m = 0
    c.drift_m = 800
    jumped = c.record(0, 0)
    east_m = (jumped["lon"] - exact[0]["lon"]) * 111_320 * math.cos(math.radians(32.0))
    assert 790 < east_m < 810


def test_vehicle_modes_in_scenarios():
    reg = load(DEMO).registry()
    spec = ScenarioSpec.model_validate(
        {
            "name": "x",
            "duration_s": 60,
            "events": [
                {"at_s": 10, "vehicle": "tanker-01", "mode": "gps_drift", "for_s": 5},
                {"at_s": 20, "vehicle": "coach-07", "mode": "offline"},
            ],
        }
    )
    modes = compile_scenario(spec, reg).modes
    assert [(m.t_s, m.device, m.mode) for m in modes] == [
        (10, "vehicle:tanker-01", "gps_drift"),
        (15, "vehicle:tanker-01", None),
        (20, "vehicle:coach-07", "offline"),
    ]
    with pytest.raises(ValueError, match="applies to a vehicle"):
        ScenarioSpec.model_validate(
            {
                "name": "x",
                "duration_s": 1,
                "events": [{"at_s": 1, "device": "sis-1", "mode": "offline"}],
            }
        )


async def test_fleet_as_jt808_terminals_reaches_the_position_topics(mosquitto, tmp_path):
    from gateway.jt808 import HoldPolicy, Jt808Gateway
    from ingest.positions import decode_positions
    from simulators.fleet import Jt808Fleet
    from simulators.signals import Constant

    reg = load(DEMO).registry()
    gw = Jt808Gateway(
        reg,
        listen=("127.0.0.1", 0),
        broker=(mosquitto.host, mosquitto.port),
        spool_dir=tmp_path / "spool",
        secret=b"test-secret-of-16+bytes",
        # no blind-area hold: the positions would wait its 15 s after each authentication
        # (test_jt808_hold.py has it), this test's whole deadline
        hold=HoldPolicy(live_s=0),
    )
    got: dict[str, list[float]] = {}

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe("hazardhub/v1/+/vehicles/+/position", qos=1)
            async for msg in client.messages:
                cols = decode_positions(bytes(msg.payload))  # type: ignore[arg-type]
                got.setdefault(str(msg.topic).split("/")[4], []).extend(cols.speed_kmh.tolist())

    stop = asyncio.Event()
    gw_task = asyncio.create_task(gw.run(stop))
    await asyncio.wait_for(gw.ready.wait(), 5)
    host, port = gw.server.address
    sub = asyncio.create_task(collect())
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    vehicles = [
        (
            SimulatedVehicle(
                v.tenant, v.spec.id, ((32.0, 118.8), (32.5, 119.8)), Constant(50.0 + k * 10)
            ),
            f"0139{k:08d}",
            v.spec.plate,
        )
        for k, v in enumerate(reg.vehicles.values())
    ]
    fleet = Jt808Fleet(
        vehicles,
        host=host,
        port=port,
        clock=lambda: loop.time() - t0,
        start_wall_ms=time.time_ns() // 1_000_000,
        period_s=0.2,
    )
    fleet_stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(fleet_stop))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
            len(got.get(v.spec.id, [])) >= 3 for v in reg.vehicles.values()
        ):
            await asyncio.sleep(0.1)
    finally:
        fleet_stop.set()
        await fleet_task
        stop.set()
        await gw_task
        sub.cancel()
    assert {v.spec.id: round(min(got[v.spec.id])) for v in reg.vehicles.values()} == {
        v.spec.id: 50 + k * 10 for k, v in enumerate(reg.vehicles.values())
    }


STUCK_ANEMOMETER = """
name: stuck-anemometer
description: the jib-top anemometer of TC-1 freezes at 20 s and comes back at 90 s
duration_s: 110
seed: 5
baseline:
  tc1-monitor:
    wind: {constant: 6.0, noise: 0.4}
    load_pct: {constant: 20}
    moment_pct: {constant: 12}
    hoist_up_power: {constant: 1}
    trolley_out_power: {constant: 1}
events:
  - {at_s: 20, device: tc1-monitor, point: wind, mode: stuck, for_s: 70}
"""


@pytest.mark.slow
async def test_a_stuck_anemometer_raises_frozen_through_the_hub(mosquitto, tmp_path):
    """The simulator's `stuck` mode freezes the wind register; with the example's frozen check on
    the wind sensor (its 30 min cut to 2 s of event time, i.e. wall time) the hub raises 'frozen'
    about 2 s of wall time after the freeze, and clears it when the value moves again."""
    accel, poll_s = 20.0, 0.1
    text = CRANE.read_text().replace("frozen: {after_s: 1800,", "frozen: {after_s: 2,")
    assert text != CRANE.read_text()
    config = tmp_path / "crane.yaml"
    config.write_text(text)
    reg = load(config).registry()
    spec = parse_document(STUCK_ANEMOMETER, ScenarioSpec, "stuck-anemometer")
    played = await play(
        compile_scenario(spec, reg), config, mosquitto.port, tmp_path, accel=accel, poll_s=poll_s
    )
    frozen = [e for e in played.events if e[1] == 7]  # FROZEN
    assert {e[0] for e in frozen} == {"tc1-wind"}  # the other sensors have no check
    assert [e[2] for e in frozen] == ["raised", "cleared"]
    # not before 2 s of wall time (40 s of scenario) unmoved, and well before the sensor is back.
    # The run starts at the first poll that read the value the register froze at: the first poll
    # after the freeze, or the one before it (a poll period earlier) when that read the same
    # register value, the noise falling in the same step; the alarm waits for a poll past the
    # 2 s, late by a poll or more when loaded
    assert 20 - poll_s * accel + 2 * accel - 1 <= frozen[0][4] <= 85, frozen
    assert 90 - 1 <= frozen[1][4] <= 90 + 2 * poll_s * accel + 4, frozen
