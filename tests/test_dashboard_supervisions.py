"""The centre's 督办 to follow up, in the dashboard (api/static/supervisions.js), in headless
Chromium against a real hub and broker: two 督办 of a tanker's overspeed, one past its deadline
by the hub's clock (超期未应答), one still open; the centre's key has a 督办 button in the header
whose list shows the overdue one first, marked, then the open one; an enterprise's key has no
such button."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from test_dashboard_supervise import CONFIG, KEYS, _page, q

from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, get_json, running_hub
from services import free_port

pytestmark = pytest.mark.slow


async def test_the_centre_sees_the_overdue_supervisions_first(mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    port = free_port()
    hub = Hub(
        load_registry(cfg, [ROOT / "profiles"]),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=port),
        extra_keys=KEYS,
    )
    layout = TopicLayout()
    async with (
        running_hub(hub),
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k-op"}
        ) as api,
    ):
        now = time.time_ns() // 1_000_000
        fixes = [
            {"ts": now - (5 - k) * 5000, "lat": 31.2 + k * 0.001, "lon": 121.4,
             "speed_kmh": 95.0, "heading_deg": 0.0}
            for k in range(5)
        ]  # fmt: skip
        await mq.publish(layout.position("chem-logistics", "tanker-01"), orjson.dumps(fixes), qos=1)

        async def raised() -> Any:
            rows = await get_json(api, "/api/v1/alarms", kind="overspeed")
            return rows[0]["id"] if rows else None

        alarm = await eventually(raised, 20, "the tanker's overspeed alarm")
        url = f"/api/v1/alarms/{alarm}/supervise"
        soon = await api.post(url, json={"deadline": time.time_ns() // 1_000_000 + 1500})
        assert soon.status_code == 200, soon.text
        later = await api.post(url, json={"deadline": now + 7_200_000})
        assert later.status_code == 200, later.text
        overdue, ahead = soon.json()["supervision_id"], later.json()["supervision_id"]

        async def marked() -> Any:
            return await get_json(api, "/api/v1/supervisions", status="overdue")

        assert [s["id"] for s in await eventually(marked, 20, "the overdue 督办")] == [overdue]

        async with _page(port, "k-ent", "zh") as ent:
            assert await ent.js(f"{q('#supervisions-open')}.hidden") is True
        async with _page(port, "k-op", "zh") as op:
            assert await op.js(f"{q('#supervisions-open')}.hidden") is False
            assert await op.js(f"{q('#supervisions-open')}.textContent") == "督办"
            await op.js(f"{q('#supervisions-open')}.click()")
            rows = "#svl-list tbody tr"
            await op.wait_for(f"document.querySelectorAll({rows!r}).length === 2", 15)
            got = await op.js(
                f"[...document.querySelectorAll({rows!r})].map((r) => r.dataset.supervision + '|'"
                " + r.className + '|' + r.querySelector('.svl-status').textContent)"
            )
            assert got == [
                f"{overdue}|svl-row svl-overdue|超期未应答超期",
                f"{ahead}|svl-row svl-open|待应答",
            ]
            assert await op.js(f"{q('#svl-list tbody tr .overdue')}.textContent") == "超期"
            # the enterprise by its name, the vehicle by its plate
            cells = await op.js(f"[...{q(rows)}.cells].slice(1, 3).map((c) => c.textContent)")
            assert cells == ["华通危化运输", "苏AD1234 (tanker-01)"], cells
