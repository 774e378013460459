"""Mine scenarios (examples/scenarios/mine/): a main-fan stop and a gateway losing its uplink,
with their ground truth, played through the Modbus farm, a real gateway, Mosquitto and a real hub;
the hub's alarms and stored readings are compared with the truth."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from alerts.table import ABOVE, ACTION, BELOW
from hazardhub.settings import load
from simulators.relay import UplinkRelay
from simulators.timeline import (
    CompiledScenario,
    ScenarioSpec,
    _default_baseline,
    compile_scenario,
)
from telemetry.config import LevelSpec
from telemetry.registry import Registry, parse_document

from e2e_helpers import play

ROOT = Path(__file__).resolve().parent.parent
MINE = ROOT / "examples" / "scenarios" / "mine"
HUB_CONFIG = MINE / "mine-hub.yaml"
WIND = ("face1302-wind", "face1302-return-wind")
METHANE = ("face1302-ch4-t0", "face1302-ch4-t1")


def scenario(name: str) -> ScenarioSpec:
    path = MINE / f"{name}.yaml"
    return parse_document(path.read_text(), ScenarioSpec, str(path))


def registry() -> Registry:
    return load(HUB_CONFIG).registry()


def crossings(compiled: CompiledScenario) -> dict[tuple[str, str], float | None]:
    """The truth: when each wind sensor fell to 0.25 m/s and each methane head reached 1.0 % and
    1.5 %, and when the face feed went off."""
    out: dict[tuple[str, str], float | None] = {}
    for sid in WIND:
        out[(sid, "ventilation_stop")] = compiled.first_crossing(sid, 0.25, above=False)
    for sid in METHANE:
        out[(sid, "alarm")] = compiled.first_crossing(sid, 1.0)
        out[(sid, "power_cut")] = compiled.first_crossing(sid, 1.5)
    out[("face1302-feed", "off")] = compiled.first_crossing("face1302-feed", 0.5, above=False)
    return out


def test_hub_config_is_accepted():
    reg = registry()
    wind = reg.sensor("face1302-wind")
    assert [(lv.name, lv.tier, lv.below, lv.action) for lv in wind.levels] == [
        ("ventilation_stop", "red", 0.25, "停风: 撤人、切断电源")
    ]
    t1 = reg.sensor("face1302-ch4-t1")
    assert [(lv.name, lv.above) for lv in t1.levels] == [("alarm", 1.0), ("power_cut", 1.5)]


def test_without_a_baseline_a_sensor_with_levels_below_only_starts_above_them():
    """Wind held at 0 m/s (and O2 at 0 %) raised its red alarm from the first poll of a mine
    simulated without a scenario (helper-72): its default sits above its lowest level."""
    compiled = compile_scenario(ScenarioSpec(name="plain", duration_s=60), registry())
    for sid in WIND:
        assert compiled.first_crossing(sid, 0.5, above=False) is None  # never at its recovery
        assert compiled.value(sid, 0.0) == pytest.approx(0.525)
    assert compiled.value("face1302-ch4-t1", 0.0) == pytest.approx(0.3)  # 30 % of 1.0


def test_a_default_between_a_sensors_lows_and_highs():
    """Hi 3 and lo 1.0 (recovering at 1.2): 30 % of the hi (0.9) is under the lo and alarmed;
    the default is between them."""
    levels = (
        LevelSpec(name="hi", tier="yellow", above=3.0, recover=2.8),
        LevelSpec(name="lo", tier="yellow", below=1.0, recover=1.2),
    )
    info = dataclasses.replace(registry().sensor("face1302-ch4-t1"), levels=levels)
    value = _default_baseline(info).constant
    assert 1.2 < value < 2.8


def test_ventilation_stop_truth_is_deterministic_for_the_seed():
    reg = registry()
    spec = scenario("ventilation-stop")
    a = crossings(compile_scenario(spec, reg))
    assert a == crossings(compile_scenario(spec, reg))
    other = crossings(compile_scenario(spec.model_copy(update={"seed": 99}), reg))
    assert a[("face1302-wind", "ventilation_stop")] != other[("face1302-wind", "ventilation_stop")]
    assert a[("face1302-ch4-t1", "alarm")] == other[("face1302-ch4-t1", "alarm")]  # noiseless
    times = {k: v for k, v in a.items() if v is not None}
    assert len(times) == len(a), a
    # the fan stops at 60 s and the air is gone over 20 s; methane follows, then the power cut
    assert 60 < times[("face1302-wind", "ventilation_stop")] < 80
    assert 60 < times[("face1302-return-wind", "ventilation_stop")] < 80
    assert times[("face1302-ch4-t1", "alarm")] == pytest.approx(80 + 120 * 0.7 / 1.3, abs=0.02)
    assert times[("face1302-ch4-t1", "power_cut")] == pytest.approx(80 + 120 * 1.2 / 1.3, abs=0.02)
    assert (
        max(times[(s, "ventilation_stop")] for s in WIND)
        < min(times[(s, "alarm")] for s in METHANE)
        < max(times[(s, "alarm")] for s in METHANE)
        < min(times[(s, "power_cut")] for s in METHANE)
        < max(times[(s, "power_cut")] for s in METHANE)
        < times[("face1302-feed", "off")]
    )
    # the return airway (T2, power cut at 1.0 %) and CO stay under their levels
    compiled = compile_scenario(spec, reg)
    assert compiled.first_crossing("face1302-ch4-t2", 1.0) is None
    assert compiled.first_crossing("face1302-co", 24.0) is None


@pytest.mark.slow
async def test_ventilation_stop_through_the_hub(mosquitto, tmp_path):
    accel, poll_s = 20.0, 0.1
    compiled = compile_scenario(scenario("ventilation-stop"), registry())
    truth = crossings(compiled)
    played = await play(compiled, HUB_CONFIG, mosquitto.port, tmp_path, accel=accel, poll_s=poll_s)
    # one poll period of scenario time, and the register's quantisation (0.01 % of methane is
    # about 1 s of this ramp)
    tolerance = poll_s * accel + 1.0
    got: dict[tuple[str, str], float] = {}
    for sid in WIND:
        below = [e for e in played.events if e[0] == sid and e[1] == BELOW]
        assert below, (sid, played.events)
        assert below[0][3] == "ventilation_stop"
        got[(sid, "ventilation_stop")] = below[0][4]
    for sid in METHANE:
        levels = [e[3] for e in played.events if e[0] == sid and e[1] == ABOVE]
        assert levels[:2] == ["alarm", "power_cut"], (sid, levels)  # raised, then escalated
        got[(sid, "alarm")] = played.first(sid, "alarm")
        got[(sid, "power_cut")] = played.first(sid, "power_cut")
    for key, t in got.items():
        want = truth[key]
        assert want is not None
        # a stall of the loop the farm, the gateway and the hub share (a loaded machine) moves
        # the poll that saw the crossing by as much
        late = played.stall(min(t, want), max(t, want))
        assert abs(t - want) <= tolerance + late, (key, t, want, played.stalls)
    # the order of the incident: no air, then methane, then the power cut
    assert (
        max(got[(s, "ventilation_stop")] for s in WIND)
        < min(got[(s, "alarm")] for s in METHANE)
        <= max(got[(s, "alarm")] for s in METHANE)
        < min(got[(s, "power_cut")] for s in METHANE)
    )
    # the feed went off in time: no 'power cut failed' (馈电异常); nothing else alarmed
    assert not [e for e in played.events if e[1] == ACTION], played.events
    assert {e[0] for e in played.events} == set(WIND) | set(METHANE), played.events


def test_uplink_loss_truth_and_event_shape():
    compiled = compile_scenario(scenario("gateway-uplink-loss"), registry())
    assert compiled.outages("gw1") == ((60.0, 90.0),)
    assert [(m.t_s, m.device, m.mode) for m in compiled.modes] == [
        (60.0, "gateway:gw1", "uplink_loss"),
        (90.0, "gateway:gw1", None),
    ]
    crossing = compiled.first_crossing("face1302-ch4-t1", 1.0)
    assert crossing is not None and 60 < crossing < 90 and crossing == pytest.approx(82, abs=0.02)
    for bad in (
        {"at_s": 1, "gateway": "gw1", "mode": "uplink_loss"},  # no for_s
        {"at_s": 1, "gateway": "gw1", "mode": "comm_loss", "for_s": 5},
        {"at_s": 1, "device": "kj-sub-5", "mode": "uplink_loss", "for_s": 5},
    ):
        with pytest.raises(ValueError, match="gateway"):
            ScenarioSpec.model_validate({"name": "x", "duration_s": 9, "events": [bad]})
    spec = ScenarioSpec.model_validate(
        {
            "name": "x",
            "duration_s": 9,
            "events": [{"at_s": 1, "gateway": "gw9", "mode": "uplink_loss", "for_s": 5}],
        }
    )
    with pytest.raises(ValueError, match="gw9"):
        compile_scenario(spec, registry())


async def test_relay_forwards_and_cut_refuses_until_restored():
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    relay = UplinkRelay("127.0.0.1", server.sockets[0].getsockname()[1])
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        relay.cut(0.5)
        assert await asyncio.wait_for(reader.read(10), 5) == b""  # the open link is broken
        writer.close()
        r2, w2 = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(r2.read(10), 5) == b""  # refused while cut
        w2.close()
        assert relay.refused == 1 and relay.is_cut
        await asyncio.sleep(0.7)
        assert not relay.is_cut
        ((start, end),) = relay.outages
        assert end is not None and 400 <= end - start <= 1500
        r3, w3 = await asyncio.open_connection("127.0.0.1", relay.port)
        w3.write(b"back")
        assert await asyncio.wait_for(r3.readexactly(4), 5) == b"back"
        w3.close()
    finally:
        await relay.stop()
        server.close()
        await server.wait_closed()


@pytest.mark.slow
async def test_gateway_uplink_loss_through_the_hub(mosquitto, tmp_path):
    # 120 s in 15 s, a poll every 0.5 s of scenario time (as at 5x and 0.1 s)
    accel, poll_s = 8.0, 0.0625
    reg = registry()
    compiled = compile_scenario(scenario("gateway-uplink-loss"), reg)
    played = await play(
        compiled, HUB_CONFIG, mosquitto.port, tmp_path, accel=accel, poll_s=poll_s, relays=True
    )
    # the outage happened as the truth says, in scenario time
    ((cut_ms, back_ms),) = played.outages["gw1"]
    assert back_ms is not None
    ((want_from, want_to),) = compiled.outages("gw1")
    # (late by as long as the shared event loop stalled there, on a loaded machine: 4.2 s of
    # scenario time at a load of 4)
    cut_s, back_s = played.scenario_s(cut_ms), played.scenario_s(back_ms)
    assert abs(cut_s - want_from) <= 1.0 + played.stall(want_from, cut_s), (cut_s, played.stalls)
    assert abs(back_s - want_to) <= 1.0 + played.stall(want_to, back_s), (back_s, played.stalls)
    # every batch the gateway made reached the broker once: no gap in (epoch, seq) ...
    sensors = [s.id for s in reg.sensors]  # all of substation 5, behind gw1
    (published,) = played.published.values()
    by_epoch: dict[int, list[int]] = {}
    for epoch, seq in published:
        by_epoch.setdefault(epoch, []).append(seq)
    assert len(by_epoch) == 1
    (seqs,) = by_epoch.values()
    assert sorted(seqs) == list(range(len(seqs)))
    # ... and every reading of them is in the hub's store, none twice
    stored = [(sid, ts) for sid in sensors for ts in played.stored[sid]]
    assert len(stored) == len(set(stored))
    assert len(stored) == sum(published.values())
    during = [ts for sid, ts in stored if cut_ms < ts < back_ms and sid == "face1302-ch4-t1"]
    # the gateway polled on through the outage, into its spool, and every cycle it made in it
    # (counted as it made them: a loaded machine polls less often than every poll_s, 44 of 60 at
    # a load of 11) is in the store; 2 for the cycles at the cut and at the return, which
    # may be stamped on either side of them
    polled = played.polled("kj-sub-5", cut_ms, back_ms)
    assert polled >= 0.5 * (back_ms - cut_ms) / 1000 / poll_s, polled
    assert len(during) >= polled - 2, (len(during), polled)
    # the methane alarm carries the event time of the crossing, inside the outage; it arrived
    # only after the link was back
    truth = compiled.first_crossing("face1302-ch4-t1", 1.0)
    assert truth is not None
    raised = [e for e in played.events if e[0] == "face1302-ch4-t1" and e[1] == ABOVE]
    assert raised and raised[0][3] == "alarm", played.events
    t, arrival = raised[0][4], raised[0][5]
    assert abs(t - truth) <= poll_s * accel + 1.0, (t, truth)
    assert want_from < t < want_to
    assert arrival >= back_ms
