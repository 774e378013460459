"""The fleet simulator's terminal quirks, for testing a platform's handling of them: JT/T 808
alarm bits set by a scenario's `alarm` events, a vehicle's clock off (`clock_skew_s`), and
position messages sent twice on purpose (`duplicates`, the same frame with the same serial).
Played through a real JT/T 808 gateway and a real Mosquitto: the records the gateway publishes
carry the bits and the skewed stamps, and it answers every copy and takes each message once
(`retransmitted`). Over MQTT the same scenario gives the same bits and stamps, and the copies
are envelopes published twice with the same seq."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest
from jt808_helpers import VEHICLE_TOPIC, make_gateway, positions_on, running
from positionpayload import numbered, records_of

from hazardhub.settings import load
from simulators.farm import ScenarioRunner
from simulators.fleet import FleetPublisher, Jt808Fleet, SimulatedVehicle
from simulators.scenario_spec import ScenarioSpec
from simulators.timeline import CompiledScenario, compile_scenario
from telemetry.jt808 import Alarm
from telemetry.registry import Registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, tanker_registry

SCENARIO = {
    "name": "terminal-quirks",
    "start": "2025-03-01T10:00:00+08:00",
    "duration_s": 20,
    "routes": {
        "tanker-01": [[31.0, 120.0], [31.01, 120.01]],
        "tanker-02": [[32.0, 119.0], [32.01, 119.01]],
    },
    "clock_skew_s": {"tanker-02": 45},
    "duplicates": {"tanker-01": 0.5},
    "events": [
        {"at_s": 4, "vehicle": "tanker-01", "alarm": "emergency", "for_s": 6},
        {"at_s": 6, "vehicle": "tanker-01", "alarm": 1, "for_s": 2},  # overspeed, by its bit
        {"at_s": 0, "vehicle": "tanker-02", "alarm": "fatigue"},  # to the end
    ],
}
ACCEL, PERIOD = 10.0, 0.1  # a fix every scenario second: t = 0, 1, ..., 20
STEPS = range(21)


def expected_word(vehicle: str, t: int) -> int:
    if vehicle == "tanker-02":
        return int(Alarm.FATIGUE)
    word = int(Alarm.EMERGENCY) if 4 <= t < 10 else 0
    return word | (int(Alarm.OVERSPEED) if 6 <= t < 8 else 0)


def scenario_and_vehicles(reg: Registry) -> tuple[CompiledScenario, list[SimulatedVehicle]]:
    compiled = compile_scenario(ScenarioSpec.model_validate(SCENARIO), reg)
    vehicles = [
        SimulatedVehicle(v.tenant, v.spec.id, route, compiled.vehicle_speeds[v.spec.id])
        for v in reg.vehicles.values()
        if (route := compiled.spec.route(v.spec.id)) is not None
    ]
    return compiled, vehicles


def check_records(got: dict[str, list[dict[str, float]]], epoch: int) -> None:
    """Each fix once, stamped by its vehicle's clock, with its alarm word."""
    for vehicle, skew_ms in (("tanker-01", 0), ("tanker-02", 45_000)):
        records = got[VEHICLE_TOPIC.format(vehicle)]
        stamps = sorted(int(r["ts"]) for r in records)
        assert stamps == [epoch + t * 1000 + skew_ms for t in STEPS], vehicle
        for r in records:
            t = (int(r["ts"]) - skew_ms - epoch) // 1000
            assert r.get("alarm_flags", 0) == expected_word(vehicle, t), (vehicle, t)


def test_the_scenario_compiles_the_quirks(tmp_path: Path) -> None:
    compiled, _ = scenario_and_vehicles(tanker_registry(tmp_path))
    one, two = compiled.terminal_quirks["tanker-01"], compiled.terminal_quirks["tanker-02"]
    assert [one.alarm_at(t) for t in STEPS] == [expected_word("tanker-01", t) for t in STEPS]
    assert (one.clock_skew_ms, one.duplicates) == (0, 0.5)
    assert (two.alarm_at(1e9), two.clock_skew_ms, two.duplicates) == (4, 45_000, 0.0)
    with pytest.raises(ValueError, match="is none of emergency, overspeed"):
        ScenarioSpec.model_validate(
            {**SCENARIO, "events": [{"at_s": 0, "vehicle": "tanker-01", "alarm": "sos"}]}
        )
    with pytest.raises(ValueError, match="not a share"):
        ScenarioSpec.model_validate({**SCENARIO, "duplicates": 1.5})
    with pytest.raises(ValueError, match="clock_skew_s: no vehicle 'tanker-09'"):
        compile_scenario(
            ScenarioSpec.model_validate({**SCENARIO, "clock_skew_s": {"tanker-09": 1}}),
            tanker_registry(tmp_path),
        )


async def test_the_gateway_gets_the_bits_the_skew_and_the_copies(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    reg = tanker_registry(tmp_path)
    compiled, vehicles = scenario_and_vehicles(reg)
    runner = ScenarioRunner(compiled, {}, lambda: 0.0, ACCEL, {v.id: v for v in vehicles})
    gw = make_gateway(reg, mosquitto.port, tmp_path / "jt808")
    async with running(gw, commands=True) as (host, port), positions_on(mosquitto.port) as got:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        phones = {"tanker-01": "13800000001", "tanker-02": "13800000002"}
        fleet = Jt808Fleet(
            [(v, phones[v.id], "") for v in vehicles],
            host=host,
            port=port,
            clock=lambda: (loop.time() - t0) * ACCEL,
            start_wall_ms=int(time.time() * 1000),
            period_s=PERIOD,
            accel=ACCEL,
            end_s=compiled.spec.duration_s,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        await asyncio.sleep(compiled.spec.duration_s / ACCEL)
        stop.set()
        await asyncio.wait_for(run, 15)
        assert fleet.sent == 2 * len(STEPS) and fleet.waiting == 0

        async def all_in() -> bool:
            return sum(len(rs) for rs in got.values()) >= 2 * len(STEPS)

        await eventually(all_in, 10, "every fix published")
        await asyncio.sleep(0.3)  # (a copy published would come before the last fix)
    check_records(got, runner.epoch_ms)
    # about half of tanker-01's messages went twice: every copy answered, none published
    assert fleet.copies >= 3
    assert gw.server.counters["retransmitted"] == fleet.copies


async def test_over_mqtt_the_copies_are_envelopes_sent_twice(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    reg = tanker_registry(tmp_path)
    compiled, vehicles = scenario_and_vehicles(reg)
    runner = ScenarioRunner(compiled, {}, lambda: 0.0, ACCEL, {v.id: v for v in vehicles})
    envelopes: Counter[tuple[str, tuple[int, int] | None]] = Counter()
    got: dict[str, list[dict[str, float]]] = {}
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(VEHICLE_TOPIC.format("+"), qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                key = (str(msg.topic), numbered(msg.payload))
                envelopes[key] += 1
                if envelopes[key] == 1:
                    got.setdefault(str(msg.topic), []).extend(records_of(msg.payload))

    sub = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    fleet = FleetPublisher(
        vehicles,
        host="127.0.0.1",
        port=mosquitto.port,
        layout=TopicLayout(),
        clock=lambda: (loop.time() - t0) * ACCEL,
        start_wall_ms=int(time.time() * 1000),
        period_s=PERIOD,
        accel=ACCEL,
        end_s=compiled.spec.duration_s,
    )
    stop = asyncio.Event()
    run = asyncio.create_task(fleet.run(stop))
    try:
        await asyncio.sleep(compiled.spec.duration_s / ACCEL)
        stop.set()
        await asyncio.wait_for(run, 15)

        async def all_in() -> bool:
            return sum(envelopes.values()) >= fleet.copies + len(envelopes) and (
                sum(len(rs) for rs in got.values()) >= 2 * len(STEPS)
            )

        await eventually(all_in, 10, "every envelope")
    finally:
        sub.cancel()
        await asyncio.gather(sub, return_exceptions=True)
    check_records(got, runner.epoch_ms)
    twice = {key for key, n in envelopes.items() if n == 2}
    assert fleet.copies >= 3 and len(twice) == fleet.copies
    assert all(topic == VEHICLE_TOPIC.format("tanker-01") for topic, _ in twice)
    assert max(envelopes.values()) == 2


def test_the_documented_scenario_compiles_against_the_demo() -> None:
    """docs/simulators.md's scenario of terminal quirks, played against the demo's vehicles."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "simulators.md").read_text(encoding="utf-8")
    section = doc.split("### Terminal alarms, clock skew and copies on purpose", 1)[1]
    snippet = section.split("cat > terminal-quirks.yaml <<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    spec = parse_document(snippet, ScenarioSpec, "docs/simulators.md")
    compiled = compile_scenario(spec, load(root / "examples" / "demo.yaml").registry())
    tanker = compiled.terminal_quirks["tanker-01"]
    assert [tanker.alarm_at(t) for t in (19, 20, 30, 40, 50)] == [0, 1, 3, 1, 0]
    assert tanker.duplicates == 0.25
    assert compiled.terminal_quirks["coach-07"].clock_skew_ms == 20_000
    assert compiled.terminal_quirks["charter-03"].alarm_at(1e6) == int(Alarm.FATIGUE)
