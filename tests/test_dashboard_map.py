"""The dashboard's map and trend in headless Chromium: geofences drawn under a vehicle's track, the
trend zoomed with the wheel and the range buttons; and the geofences the API gives each caller.
Screenshots go to build/screenshots/ for review."""

from __future__ import annotations

import json
import time

import aiomqtt
import httpx
import orjson
import pytest
from cdp import Browser
from test_dashboard_browser import SHOTS, _login, _publish_methane, q

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.config import ApiKeySpec
from telemetry.topics import TopicLayout

from e2e_helpers import mine_registry, running_hub
from services import free_port

FLEET = """
fleet:
  geofences:
    - kind: speed_zone
      id: town-40
      limit_kmh: 40
      polygon: [[31.630, 120.370], [31.640, 120.370], [31.640, 120.385], [31.630, 120.385]]
    - kind: corridor
      id: tanker-route
      vehicles: [acme-chem/tanker-01]
      polyline: [[31.620, 120.330], [31.6325, 120.375], [31.645, 120.420]]
      buffer_m: 800
    - kind: forbidden
      id: school-zone
      polygon: [[31.650, 120.400], [31.655, 120.400], [31.655, 120.405]]
"""
KEYS = [
    ApiKeySpec(name="op", sha256=hash_key("k-op"), role="operator"),
    ApiKeySpec(name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)),
    ApiKeySpec(name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)),
]


async def _drive(broker: int, now: int) -> None:
    """Ten minutes of the tanker along its route, one fix a minute."""
    async with aiomqtt.Client("127.0.0.1", broker) as mq:
        fixes = [
            {
                "ts": now - (10 - k) * 60_000,
                "lat": 31.620 + k * 0.0025,
                "lon": 120.330 + k * 0.009,
                "speed_kmh": 60.0,
                "heading_deg": 70.0,
            }
            for k in range(10)
        ]
        topic = TopicLayout().position("acme-chem", "tanker-01")
        await mq.publish(topic, orjson.dumps(fixes), qos=1)


async def test_geofences_are_scoped_to_what_the_caller_sees(mosquitto, tmp_path):
    hub = Hub(
        mine_registry(1502, 1.0, FLEET),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port()),
        extra_keys=KEYS,
    )
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    async with running_hub(hub), httpx.AsyncClient(base_url=base) as api:

        async def ids(key: str) -> list[str]:
            r = await api.get("/api/v1/geofences", headers={"Authorization": f"Bearer {key}"})
            r.raise_for_status()
            return [f["id"] for f in r.json()]

        assert await ids("k-op") == ["town-40", "tanker-route", "school-zone"]
        assert await ids("k-chem") == ["town-40", "tanker-route", "school-zone"]
        # the corridor names another tenant's vehicle: not shown at all
        assert await ids("k-coal") == ["town-40", "school-zone"]
        assert (await api.get("/api/v1/geofences")).status_code == 401
        r = await api.get("/api/v1/geofences", headers={"Authorization": "Bearer k-chem"})
        route = next(f for f in r.json() if f["id"] == "tanker-route")
        assert route["vehicles"] == ["tanker-01"] and route["buffer_m"] == 800


@pytest.mark.slow
async def test_map_draws_geofences_and_the_trend_zooms(mosquitto, tmp_path):
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0, FLEET),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=KEYS,
    )
    async with running_hub(hub):
        now = time.time_ns() // 1_000_000
        await _drive(mosquitto.port, now)
        await _publish_methane(
            mosquitto.port, now - 120_000, tuple(0.3 + 0.01 * k for k in range(60))
        )
        browser = Browser()
        try:
            await browser.open(f"http://127.0.0.1:{port}/")
            await _login(browser, "k-op")
            await browser.wait_for(f"{q('#map')}.dataset.tracks === '1'", timeout_s=20)
            assert await browser.js(f"{q('#map')}.dataset.geofences") == "3"
            await browser.screenshot(SHOTS / "10-map-geofences.png")

            # the trend of T1: 15 min, then zoomed in around the middle with the wheel
            tile = q(".tile[data-sensor='ch4-t1']")
            await browser.js(f"{tile}.click()")
            await browser.wait_for(f"Number({q('#trend')}.dataset.points) > 0", timeout_s=10)

            async def span() -> int:
                d = await browser.js(f"JSON.stringify({q('#trend')}.dataset)")
                data = json.loads(d)
                return int(data["end"]) - int(data["start"])

            assert abs(await span() - 15 * 60_000) < 2000
            await browser.js(  # near the right edge: the newest readings stay in view
                f"(() => {{ const c = {q('#trend')}; const r = c.getBoundingClientRect();"
                " c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + r.width"
                " * 0.95, clientY: r.top + 10, bubbles: true, cancelable: true})); })()"
            )
            await browser.wait_for(
                f"Number({q('#trend')}.dataset.end) - Number({q('#trend')}.dataset.start) < 700000",
                timeout_s=5,
            )
            assert 590_000 < await span() < 610_000  # 15 min / 1.5
            await browser.wait_for(f"Number({q('#trend')}.dataset.points) > 0", timeout_s=5)
            await browser.screenshot(SHOTS / "11-trend-zoomed.png")
            hour = q('#trend-spans button[data-span="3600000"]')
            await browser.js(f"{hour}.click()")
            await browser.wait_for(f"{hour}.getAttribute('aria-pressed') === 'true'", timeout_s=5)
            assert abs(await span() - 3600_000) < 2000
            assert not await browser.js(f"{q('#map-panel')}.hidden")

            # the coal company's key has no vehicle: no empty map (its speed zones aside)
            await browser.js(f"{q('#logout')}.click()")
            await _login(browser, "k-coal")
            await browser.wait_for(f"{q('#map')}.dataset.geofences === '2'", timeout_s=10)
            assert await browser.js(f"{q('#map-panel')}.hidden")
            assert not await browser.js(f"{q('#sites-panel')}.hidden")
        finally:
            await browser.close()


@pytest.mark.slow
async def test_a_vehicle_silent_longer_than_the_track_is_shown_where_it_was_last_seen(
    mosquitto, tmp_path
):
    """A tanker whose last fix is 2 hours old has no track in the map's 30 minutes: it was not
    drawn at all (a hazmat truck gone dark vanished from the centre's map). It is shown at its
    newest position (`/vehicles?with=last_position`), hollow, with how long ago."""
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0, FLEET),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=KEYS,
    )
    async with running_hub(hub):
        await _drive(mosquitto.port, time.time_ns() // 1_000_000 - 2 * 3600_000)
        browser = Browser()
        try:
            await browser.open(f"http://127.0.0.1:{port}/")
            await _login(browser, "k-op")
            await browser.wait_for(f"{q('#map')}.dataset.silent === '1'", timeout_s=20)
            assert await browser.js(f"{q('#map')}.dataset.tracks") == "0"
            assert not await browser.js(f"{q('#map-panel')}.hidden")
            (seen,) = json.loads(await browser.js(f"{q('#map')}.dataset.lastSeen"))
            assert seen in ("苏A·D1234 last seen 2 h ago", "苏A·D1234 2 小时前最后位置"), seen
            await browser.screenshot(SHOTS / "12-map-last-seen.png")
        finally:
            await browser.close()
