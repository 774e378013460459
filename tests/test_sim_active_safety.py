"""The fleet simulator's 苏标 active-safety alarms (a scenario's `safety` events): the shipped
`active-safety` scenario (a tired coach driver at night, a tanker's forward-collision warning)
compiles to start/end steps, its records carry them, and played over JT/T 808 through a real
gateway, Mosquitto and the hub it raises `dsm_fatigue` twice (yellow, then orange) and
`adas_forward_collision` (orange, returned at once) at the fixes that carried them."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from api.auth import hash_key
from gateway.jt808 import HoldPolicy, Jt808Gateway
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load
from simulators.farm import ScenarioRunner
from simulators.fleet import Jt808Fleet, SimulatedVehicle, attach_scenario, terminal_phones
from simulators.timeline import CompiledScenario, ScenarioSpec, compile_scenario
from telemetry.config import ApiKeySpec
from telemetry.registry import Registry, parse_document

from e2e_helpers import eventually, get_json, running_hub
from services import free_port

FLEET = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "fleet"
NOW_MS = 1_795_946_000_000  # 2026-11-29 17:53:20 China Standard Time


def compiled_and_registry() -> tuple[CompiledScenario, Registry]:
    path = FLEET / "active-safety.yaml"
    reg = load(FLEET / "fleet-hub.yaml").registry()
    return compile_scenario(parse_document(path.read_text(), ScenarioSpec, str(path)), reg), reg


def vehicles(compiled: CompiledScenario, reg: Registry) -> dict[str, SimulatedVehicle]:
    out = {}
    for v in reg.vehicles.values():
        route = compiled.spec.routes.get(v.spec.id) or ((32.0, 118.8), (32.5, 119.8))
        out[v.spec.id] = SimulatedVehicle(
            v.tenant, v.spec.id, route, compiled.vehicle_speeds[v.spec.id]
        )
    return out


def test_the_scenario_compiles_to_steps_the_records_carry():
    compiled, reg = compiled_and_registry()
    coach = compiled.terminal_quirks["coach-07"]
    # (time, source, type, level, flag, alarm id): two fatigue episodes, start and end each
    assert coach.safety == (
        (60.0, "dsm", 1, 1, 1, 1),
        (90.0, "dsm", 1, 1, 2, 1),
        (120.0, "dsm", 1, 2, 1, 2),
        (180.0, "dsm", 1, 2, 2, 2),
    )
    assert compiled.terminal_quirks["tanker-01"].safety == ((200.0, "adas", 1, 2, 0, 1),)
    fleet = vehicles(compiled, reg)
    epoch = attach_scenario(compiled, list(fleet.values()), NOW_MS)
    recs = [fleet["coach-07"].record(t, NOW_MS) for t in (55.0, 58.0, 61.0, 64.0)]
    assert ["active_safety" in r for r in recs] == [False, False, True, False]
    assert recs[2]["active_safety"] == [
        {"source": "dsm", "alarm_id": 1, "flag": 1, "type": 1, "level": 1, "ts": epoch + 61_000}
    ]
    with pytest.raises(ValueError, match="is none of adas_forward_collision"):
        ScenarioSpec.model_validate(
            {
                "name": "x",
                "duration_s": 10,
                "events": [{"at_s": 1, "vehicle": "coach-07", "safety": "dsm_sleeping"}],
            }
        )


@pytest.mark.slow
async def test_played_over_jt808_the_hub_raises_and_returns_them(mosquitto, tmp_path):
    accel, period_s = 100.0, 0.01  # 300 s in 3 s, a fix every second of scenario time
    compiled, reg = compiled_and_registry()
    key = "hh_" + secrets.token_urlsafe(16)
    api_port = free_port()
    hub = Hub(
        reg,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key(key), role="operator")],
    )
    gw = Jt808Gateway(
        reg,
        listen=("127.0.0.1", 0),
        broker=("127.0.0.1", mosquitto.port),
        spool_dir=tmp_path / "spool",
        hold=HoldPolicy(live_s=0),
    )
    gw_stop = asyncio.Event()
    async with running_hub(hub):
        gw_task = asyncio.create_task(gw.run(gw_stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            host, port = gw.server.address  # type: ignore[misc]
            loop = asyncio.get_running_loop()
            t0 = loop.time()

            def clock() -> float:
                return (loop.time() - t0) * accel

            fleet = vehicles(compiled, reg)
            runner = ScenarioRunner(compiled, {}, clock, accel, fleet)
            specs = [v.spec for v in reg.vehicles.values()]
            phones = terminal_phones([s.terminal for s in specs])
            terminals = Jt808Fleet(
                list(zip(fleet.values(), phones, (s.plate for s in specs), strict=True)),
                host=host,
                port=port,
                clock=clock,
                start_wall_ms=0,  # unused: the scenario has a start
                period_s=period_s,
                accel=accel,
                end_s=compiled.spec.duration_s,
            )
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(terminals.run(stop)),
                asyncio.create_task(runner.run(stop)),
            ]
            await asyncio.sleep(compiled.spec.duration_s / accel + 0.3)
            stop.set()
            await asyncio.gather(*tasks)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {key}"},
            ) as api:

                async def safety():
                    rows = await get_json(api, "/api/v1/alarms", limit=100)
                    rows = [a for a in rows if a["rule"] == "active_safety"]
                    return rows if len(rows) == 3 and all(a["ended_ts"] for a in rows) else None

                alarms = await eventually(safety, 10, "the three active-safety alarms, ended")
        finally:
            gw_stop.set()
            await asyncio.wait_for(gw_task, 10)
    assert gw.server.counters["active_safety"] == 5 and gw.server.counters["bad_safety"] == 0
    epoch = runner.epoch_ms
    got = sorted(
        (
            a["side"],
            a["tier"],
            (a["started_ts"] - epoch) / 1000,
            (a["ended_ts"] - epoch) / 1000,
        )
        for a in alarms
    )
    fix = period_s * accel + 1.0  # the fix that carries a step comes within one period
    expected = [
        ("adas_forward_collision", "orange", 200, 200),
        ("dsm_fatigue", "orange", 120, 180),
        ("dsm_fatigue", "yellow", 60, 90),
    ]
    for (kind, tier, start, end), (k, t, s, e) in zip(expected, got, strict=True):
        assert (kind, tier) == (k, t)
        assert start <= s <= start + fix and end <= e <= end + fix, got
    assert got[0][2] == got[0][3]  # no duration: raised and returned at once
