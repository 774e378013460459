"""The shipped `coach-driven-tired` scenario over JT/T 808: terminals powered on before the
platform is up keep their fixes (blind-area storage) and upload them once authenticated, so the
real gateway and a real hub see the whole 4 h 10 min drive from 08:00 and raise fatigue. The
terminals used to take a fix only while logged in: the first minutes of the drive never reached
the hub (continuous driving came to 3 h 56 min, no fatigue), and the track ran past the
scenario's end. A file of its own: it takes some 10 seconds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path

import aiomqtt
import httpx
import pytest
from positionpayload import records_of
from test_sim_vehicle_scenarios import registry, scenario, vehicles

from api.auth import hash_key
from gateway.jt808 import Jt808Gateway
from hazardhub.hub import Hub, HubSettings
from simulators.farm import ScenarioRunner
from simulators.fleet import Jt808Fleet, terminal_phones
from simulators.timeline import compile_scenario
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, get_json, running_hub
from services import MosquittoService, free_port

TOPIC = "hazardhub/v1/+/vehicles/+/position"


@pytest.mark.slow
async def test_tired_coach_over_jt808_reaches_the_hub_whole_and_raises_fatigue(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    accel, period_s = 2400.0, 0.0125  # 15,300 s in 6.4 s, a fix every 30 s of scenario time
    late_s = 0.6  # the platform comes up 24 min of scenario time after the terminals
    reg = registry()
    compiled = compile_scenario(scenario("coach-driven-tired"), reg)
    end_s = compiled.spec.duration_s
    key = "hh_" + secrets.token_urlsafe(16)
    api_port = free_port()
    hub = Hub(
        reg,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key(key), role="operator")],
    )
    track: list[int] = []
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                if str(msg.topic).split("/")[-2] == "coach-07":
                    track.extend(int(p["ts"]) for p in records_of(msg.payload))

    async with running_hub(hub):
        sub = asyncio.create_task(collect())
        await asyncio.wait_for(ready.wait(), 5)
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        def clock() -> float:
            return (loop.time() - t0) * accel

        fleet = vehicles(compiled, reg)
        runner = ScenarioRunner(compiled, {}, clock, accel, fleet)
        specs = [v.spec for v in reg.vehicles.values()]
        phones = terminal_phones([s.terminal for s in specs])
        port = free_port()
        terminals = Jt808Fleet(
            list(zip(fleet.values(), phones, (s.plate for s in specs), strict=True)),
            host="127.0.0.1",
            port=port,
            clock=clock,
            start_wall_ms=0,  # unused: the scenario has a start, vehicles stamp its clock
            period_s=period_s,
            accel=accel,
            end_s=end_s,
        )
        stop, gw_stop = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(terminals.run(stop), name="fleet"),
            asyncio.create_task(runner.run(stop), name="modes"),
        ]
        await asyncio.sleep(late_s)
        gw = Jt808Gateway(
            reg,
            listen=("127.0.0.1", port),
            broker=("127.0.0.1", mosquitto.port),
            spool_dir=tmp_path / "spool",
            secret=b"test-secret-0123456789",
        )
        gw_task = asyncio.create_task(gw.run(gw_stop), name="gateway")
        try:
            await asyncio.sleep(end_s / accel - (loop.time() - t0) + 0.5)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            gw_stop.set()
            await asyncio.wait_for(gw_task, 10)
        assert terminals.sent > 0 and terminals.waiting == 0 and terminals.backfills > 0
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}
        ) as client:

            async def fatigue() -> list[dict[str, object]]:
                alarms = await get_json(client, "/api/v1/alarms", limit=1000)
                return [a for a in alarms if a["rule"] == "fleet" and a["side"] == "fatigue"]

            alarms = await eventually(fatigue, 5, "the fatigue alarm")
        sub.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sub
    epoch = runner.epoch_ms
    # the whole track, from power-on at 08:00 to the scenario's end and not past it
    assert track and min(track) == epoch, (min(track) - epoch) / 1000
    assert (max(track) - epoch) / 1000 == end_s
    assert len(set(track)) == len(track) and track == sorted(track)
    assert [a["sensor"] for a in alarms] == ["coach-07.speed"], alarms
    t_move = compiled.first_crossing("coach-07.speed", 5.0 + 1e-9, step_s=0.05)
    assert t_move is not None
    got = (int(str(alarms[0]["started_ts"])) - epoch) / 1000
    fix = period_s * accel
    assert t_move + 4 * 3600 <= got <= t_move + 4 * 3600 + 2 * fix, (got, t_move)
