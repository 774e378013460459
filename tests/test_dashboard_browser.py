"""The dashboard in headless Chromium: log in with a key, see a methane alarm appear live.
Screenshots go to build/screenshots/ for review."""

from __future__ import annotations

import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from cdp import Browser

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec
from telemetry.topics import TopicLayout

from e2e_helpers import mine_registry, running_hub
from services import free_port

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


@pytest.mark.slow
async def test_operator_sees_the_methane_alarm_live(mosquitto, tmp_path):
    registry = mine_registry(1502, 1.0)
    port = free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key("k-operator-1"), role="operator")],
    )
    async with running_hub(hub):
        # the browser goes first: its open event stream would hold up the hub's shutdown
        browser = Browser()
        try:
            await browser.open(f"http://127.0.0.1:{port}/")
            await browser.wait_for("document.body.dataset.ready === '1'")
            await browser.js("document.querySelector('#key').value = 'k-operator-1'")
            await browser.js("document.querySelector('#login-form button').click()")
            await browser.wait_for("!document.querySelector('#app').hidden")
            await browser.wait_for("document.querySelector('#live').classList.contains('on')")
            assert await browser.js("document.querySelectorAll('#alarms tbody tr').length") == 0
            await browser.screenshot(SHOTS / "01-logged-in.png")

            now = time.time_ns() // 1_000_000
            keys = ("ch4_t1", "ch4_t0")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
                for seq, value in enumerate((0.4, 1.2, 1.6)):
                    batch = TelemetryBatch(
                        "gw1",
                        "kj-sub-3",
                        7,
                        seq,
                        keys,
                        np.arange(2, dtype=np.uint16),
                        np.full(2, now + seq * 1000, np.int64),
                        np.array([value, 0.3]),
                        np.zeros(2, np.uint8),
                    )
                    await mq.publish(
                        TopicLayout().telemetry("north-coal", "face-1301", "kj-sub-3"),
                        encode(batch),
                        qos=1,
                    )
            row = await browser.wait_for(
                "document.querySelector('#alarms tbody tr')?.innerText", timeout_s=20
            )
            assert "ch4-t1" in row and "power_cut" in row
            await browser.wait_for(
                "document.querySelector(\".tile[data-sensor='ch4-t1']\")?.classList.contains('alarm')"
            )
            tile = await browser.js(
                "document.querySelector(\".tile[data-sensor='ch4-t1']\").innerText"
            )
            assert "1.6" in tile
            await browser.js("document.querySelector('#lang').click()")
            await browser.screenshot(SHOTS / "02-methane-alarm-live.png")
        finally:
            await browser.close()
