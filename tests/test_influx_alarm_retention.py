"""Alarm events sat in the hub's 6-month retention policy on InfluxDB 1.x, while the regulations
(DOMAIN 3.1) and docs/storage.md keep violations and their handling 3 years (helper-195's
sysadmin). Now they go to a policy of their own (`hazardhub_3y`, 1096 days, not the default),
created at start like the first, idempotent: written with `rp=` and read from it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from test_store_influx import acme_registry

from alerts.alarms import AlarmEvent
from hazardhub.hub import HubSettings
from hazardhub.hubsettings import _make_store
from ingest.store.buffered import BufferedStore
from ingest.store.influx import InfluxStore
from ingest.store.retention import InfluxRetention
from ingest.store.schema import alarm_lines
from telemetry.registry import Registry

from services import InfluxService

DAY_MS = 86_400_000


def _event(registry: Registry, ts: int, alarm_id: int) -> AlarmEvent:
    info = next(s for s in registry.sensors if s.id == "ch4.1")
    return AlarmEvent(
        alarm_id=alarm_id,
        kind="raised",
        tenant=info.tenant,
        site=info.site,
        device=info.device,
        sensor=info.id,
        rule=info.rule,
        side="above",
        level=1,
        level_name="high",
        tier="red",
        action="evacuate",
        value=1.5,
        ts=ts,
        arrival=ts + 150,
    )


async def _query(url: str, database: str, q: str) -> list[list[object]]:
    async with httpx.AsyncClient(base_url=url) as client:
        resp = await client.get("/query", params={"db": database, "q": q})
    series = resp.json()["results"][0].get("series") or [{"values": []}]
    return [v for s in series for v in s["values"]]


async def _policies(url: str, database: str) -> dict[str, tuple[object, object]]:
    rows = await _query(url, database, f'SHOW RETENTION POLICIES ON "{database}"')
    return {str(v[0]): (v[1], v[4]) for v in rows}


async def test_alarm_events_go_to_a_policy_of_three_years_and_are_read_from_it(
    influxdb: InfluxService,
) -> None:
    registry = acme_registry()
    database = f"test_{uuid.uuid4().hex[:12]}"
    now = time.time_ns() // 1_000_000
    old = now - 400 * DAY_MS  # beyond the readings' 184 days, within the alarms' 3 years
    try:
        async with InfluxStore(registry, influxdb.url, database, retention=InfluxRetention()):
            policies = await _policies(influxdb.url, database)
            assert policies["hazardhub"] == ("4416h0m0s", True)
            assert policies["hazardhub_3y"] == ("26304h0m0s", False)  # 1096 d, not the default
        # at the next start: there already, nothing refused; a duration changed is altered
        rp = InfluxRetention(alarm_duration="1500d")
        async with InfluxStore(registry, influxdb.url, database, retention=rp) as store:
            assert (await _policies(influxdb.url, database))["hazardhub_3y"] == (
                "36000h0m0s",
                False,
            )
            events = [_event(registry, old, 1), _event(registry, now, 2)]
            await store.write_alarm_events(events)  # the old one is not beyond its policy
            stored = await _query(
                influxdb.url, database, 'SELECT "alarm_id" FROM "hazardhub_3y"."alarm_event"'
            )
            assert [int(str(v[1])) for v in stored] == [1, 2]
            assert not await _query(
                influxdb.url, database, 'SELECT "alarm_id" FROM "hazardhub"."alarm_event"'
            )
            got = await store.alarm_events(None, old - 1, now + 1)
            assert [e.alarm_id for e in got] == [1, 2]
            assert got[0] == events[0]
            # one a hub of before wrote to the readings' policy: read too, until it drops it
            async with httpx.AsyncClient(base_url=influxdb.url) as client:
                (line,), _ = alarm_lines([_event(registry, now - 5000, 3)])
                resp = await client.post(
                    "/write",
                    params={"db": database, "rp": "hazardhub", "precision": "ms"},
                    content=line,
                )
                assert resp.status_code == 204, resp.text
            got = await store.alarm_events(None, old - 1, now + 1)
            assert [e.alarm_id for e in got] == [1, 3, 2]
    finally:
        async with httpx.AsyncClient(base_url=influxdb.url) as client:
            await client.post("/query", params={"q": f'DROP DATABASE "{database}"'})


def test_the_hubs_settings_name_the_alarm_policys_duration(tmp_path: Path) -> None:
    settings = HubSettings(
        data_dir=tmp_path, influx_url="http://127.0.0.1:1", influx_alarm_retention="2000d"
    )
    store = _make_store(acme_registry(), settings)
    assert isinstance(store, BufferedStore) and isinstance(store.inner, InfluxStore)
    rp = store.inner.retention
    assert rp is not None and (rp.alarm_name, rp.alarm_duration) == ("hazardhub_3y", "2000d")
    assert HubSettings(data_dir=tmp_path).influx_alarm_retention == "1096d"


def test_the_alarm_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="duration"):
        InfluxRetention(alarm_duration="3 years")
    with pytest.raises(ValueError, match="already"):
        InfluxRetention(alarm_name="hazardhub")
