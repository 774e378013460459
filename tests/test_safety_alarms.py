"""Active-safety alarms end to end over real parts: a JT/T 808 terminal sends 苏标 DSM and ADAS
blocks (0x65, 0x64) over a real socket -> the JT/T 808 gateway -> Mosquitto -> the hub raises
`dsm_fatigue` at the block's own time and tier, returns it at the end block; the same block in a
blind-area upload, and again after a hub restart, raises nothing twice; a malformed block is
counted and its position kept; an ADAS event without duration raises and returns at once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from jt808_helpers import CST

from api.auth import hash_key
from gateway.jt808 import HoldPolicy, Jt808Gateway
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from simulators.jt808 import Fix, Jt808Terminal
from simulators.jt808fix import safety_block
from telemetry.activesafety import SafetyEvent
from telemetry.config import ApiKeySpec
from telemetry.jt808.safety import DSM

from e2e_helpers import eventually, get_json, running_hub

ROOT = Path(__file__).resolve().parent.parent
KEY = "op-key-0123456789"
CONFIG = """
version: 1
tenants:
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 苏B·K5678, class: coach, terminal: "13912344329"}
"""


def _hub(registry, tmp_path: Path, broker: int, api_port: int) -> Hub:
    return Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=broker, api_port=api_port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key(KEY), role="operator")],
    )


@pytest.mark.slow
async def test_dsm_fatigue_raises_and_returns_once_and_a_bad_block_keeps_its_position(
    mosquitto, tmp_path
):
    from services import free_port

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    api_port = free_port()
    gw = Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=(mosquitto.host, mosquitto.port),
        spool_dir=tmp_path / "spool",
        hold=HoldPolicy(live_s=0),  # positions as they come (a reconnection holds them 15 s)
    )
    t0 = int(datetime.now(CST).replace(microsecond=0).timestamp() * 1000) - 120_000

    def fix(i: int, *events: SafetyEvent, items: tuple[tuple[int, bytes], ...] = ()) -> Fix:
        f = Fix(t0 + i * 10_000, 31.2 + i * 0.0005, 121.4, 72.0, 90, 12, items=items)
        blocks = tuple(safety_block(f, ev, "HZ00007") for ev in events)
        return Fix(f.ts_ms, f.lat, f.lon, 72.0, 90, 12, safety=blocks, items=items)

    start = SafetyEvent("dsm", 7, 1, 1, 2, t0 + 8_000, 3)  # fatigue, second level, at 8 s
    end = SafetyEvent("dsm", 7, 2, 1, 2, t0 + 28_000, 0)
    collision = SafetyEvent("adas", 8, 0, 1, 1, t0 + 40_000, 1)  # no duration, first level
    stop = asyncio.Event()
    gw_task = asyncio.create_task(gw.run(stop))
    try:
        await asyncio.wait_for(gw.ready.wait(), 5)
        host, port = gw.server.address  # type: ignore[misc]
        async with (
            running_hub(_hub(registry, tmp_path, mosquitto.port, api_port)),
            Jt808Terminal(host, port, "013912344329", "苏B·K5678") as terminal,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {KEY}"},
            ) as api,
        ):
            await terminal.login()

            async def alarms(kind: str, n: int = 1):
                rows = await get_json(api, "/api/v1/alarms", kind=kind)
                return rows if len(rows) >= n else None

            await terminal.report(fix(0))
            await terminal.report(fix(1, start))
            (fatigue,) = await eventually(lambda: alarms("dsm_fatigue"), 15, "dsm_fatigue")
            assert (fatigue["sensor"], fatigue["rule"], fatigue["tier"]) == (
                "coach-07.speed",
                "active_safety",
                "orange",
            )
            assert fatigue["started_ts"] == t0 + 8_000  # the block's own time, not the report's
            (raised,) = [
                e
                for e in (await get_json(api, f"/api/v1/alarms/{fatigue['id']}"))["events"]
                if e["kind"] == "raised"
            ]
            assert "alarm id 7" in raised["comment"] and "附件 3 个" in raised["comment"]
            assert "HZ00007/" in raised["comment"]  # the identification number, for the video
            assert raised["level_name"] == "level2"  # 二级, as the dashboard says it
            # a DSM block of a wrong length; the end; the start again in a blind-area upload
            bad = ((DSM, b"\x01" * 40),)
            await terminal.report(fix(2, items=bad))
            await terminal.report(fix(3, end))
            await terminal.backfill([fix(1, start)])

            async def returned():
                row = await get_json(api, f"/api/v1/alarms/{fatigue['id']}")
                return row if row["ended_ts"] else None

            row = await eventually(returned, 15, "the fatigue alarm to return to normal")
            assert (row["ended_ts"], row["isa_state"]) == (t0 + 28_000, "rtn_unack")
            await terminal.report(fix(4, collision))
            (hit,) = await eventually(
                lambda: alarms("adas_forward_collision"), 15, "the forward collision warning"
            )
            assert (hit["tier"], hit["started_ts"], hit["ended_ts"]) == (
                "yellow",
                t0 + 40_000,
                t0 + 40_000,
            )
            assert hit["isa_state"] == "rtn_unack"  # returned at once, still to acknowledge
            assert len(await get_json(api, "/api/v1/alarms", kind="dsm_fatigue")) == 1
            assert gw.server.counters["bad_safety"] == 1
            track = await get_json(
                api, "/api/v1/vehicles/coach-07/track", start=t0 - 1, end=t0 + 60_000
            )
            assert [p["ts"] for p in track] == [t0 + k * 10_000 for k in range(5)]
        # a hub restarted: the start and end sent again raise nothing
        async with (
            running_hub(_hub(registry, tmp_path, mosquitto.port, api_port)) as hub,
            Jt808Terminal(host, port, "013912344329", "苏B·K5678") as terminal,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                headers={"Authorization": f"Bearer {KEY}"},
            ) as api,
        ):
            await terminal.login()
            await terminal.backfill([fix(1, start), fix(3, end), fix(4, collision)])
            await terminal.report(fix(5))
            await eventually(
                lambda: _async(
                    hub.ingest.metrics.get("hazardhub_positions_total") >= 4  # type: ignore[attr-defined]
                ),
                15,
                "the hub to judge the upload",
            )
            assert len(await get_json(api, "/api/v1/alarms", kind="dsm_fatigue")) == 1
            assert len(await get_json(api, "/api/v1/alarms", kind="adas_forward_collision")) == 1
    finally:
        stop.set()
        await asyncio.wait_for(gw_task, 10)


async def _async(value: object) -> object:
    return value


async def test_a_restarted_or_reloaded_hub_knows_the_open_alarms_and_raises_nothing_twice(
    tmp_path,
):
    """Without the network: the hub's dispatcher on a state database, restarted and reloaded.
    The open alarm is the database's after each (its end returns it); a start judged again
    after a restart (its `seen` forgotten) raises nothing."""
    import numpy as np

    from alerts.statedb import StateDB
    from ingest.dispatch import Dispatcher
    from ingest.metrics import Metrics
    from ingest.store.base import PositionBatch
    from ingest.store.sqlite import SqliteStore

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    v = registry.sensor("coach-07.speed").index
    t0 = 1_795_961_100_000

    def batch(ts: int, *events: SafetyEvent) -> PositionBatch:
        one = (np.array([v], np.int32), np.array([ts], np.int64))
        rest = (np.array([31.2]), np.array([121.4]), np.array([60.0]), np.array([90.0]))
        return PositionBatch(*one, *rest, safety=tuple((v, e) for e in events))

    start = SafetyEvent("dsm", 7, 1, 2, 1, t0, 0)  # a phone call
    end = SafetyEvent("dsm", 7, 2, 2, 1, t0 + 20_000, 0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(registry, tmp_path / "ts.db")
    await store.open()
    try:
        first = Dispatcher(registry, store, db, Metrics())
        raised = await first.judge(None, [batch(t0, start)], t0 + 1000)
        assert [(e.kind, e.side) for e in raised] == [("raised", "dsm_phone_call")]
        again = Dispatcher(registry, store, db, Metrics())  # a restart
        assert again.safety.open == {(v, 98): 1}  # dsm_phone_call, level 1, as the database has it
        assert again.reload(registry, t0 + 3000) == []  # the configuration taken again
        assert again.safety.open == {(v, 98): 1}
        ended = await again.judge(None, [batch(t0 + 20_000, end)], t0 + 21_000)
        assert [(e.kind, e.ts) for e in ended] == [("cleared", t0 + 20_000)]
        assert again.safety.open == {}
        # restarted again, the start and the end sent again (a blind area uploaded twice)
        third = Dispatcher(registry, store, db, Metrics())
        assert (
            await third.judge(None, [batch(t0, start), batch(t0 + 20_000, end)], t0 + 30_000) == []
        )
        assert third.safety.open == {}
        assert len([a for a in db.list_alarms(None) if a.rule == "active_safety"]) == 1
    finally:
        await store.close()
        db.close()
