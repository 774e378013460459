"""The centre's alarm supervision (报警督办) from the dashboard, in headless Chromium against a real
hub and broker: the centre's operator opens a hazmat tanker's overspeed alarm, 督办s it from the
alarm's detail (deadline in China time, level, note), the hub journals it and publishes the
`supervise_alarm` command for the vehicle's JT/T 809 platform; a deadline past is refused in
words; an enterprise's key has no such button (api/static/supervise.js)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from cdp import Browser
from dashboard_page import signed_in

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from telemetry.config import ApiKeySpec
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, get_json, running_hub
from services import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CST = timezone(timedelta(hours=8))
CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    name: 华通危化运输
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
jt808_gateways: [gw809]
"""
KEYS = [
    ApiKeySpec(name="zhang", sha256=hash_key("k-op"), role="operator"),
    ApiKeySpec(
        name="acme", sha256=hash_key("k-ent"), role="enterprise", tenants=("chem-logistics",)
    ),
]
DIALOG = "#sv-dialog"


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def _input(ms: int) -> str:
    """A time as a datetime-local input takes it, in China time."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(CST).strftime("%Y-%m-%dT%H:%M")


@asynccontextmanager
async def _page(port: int, key: str, lang: str) -> AsyncIterator[Browser]:
    async with signed_in(port, key, lang) as browser:
        yield browser


async def _detail(browser: Browser, alarm: int) -> str:
    """Open the alarm's detail; the selector of its extra row."""
    row = f"tr.alarm[data-alarm='{alarm}']"
    await browser.wait_for(f"{q(row)} !== null", 15)
    await browser.js(f"{q(row)}.click()")
    extra = f"tr.extra[data-for='{alarm}']"
    await browser.wait_for(f"{q(extra)} !== null")
    return extra


async def _send(browser: Browser, deadline: int, level: str, note: str) -> str:
    form = f"{DIALOG} form"
    await browser.js(
        f"{q(f'{form} [name=deadline]')}.value = {json.dumps(_input(deadline))};"
        f"{q(f'{form} [name=level]')}.value = {json.dumps(level)};"
        f"{q(f'{form} [name=note]')}.value = {json.dumps(note)}; 1"
    )
    await browser.js(f"{q(f'{form} .sv-msg')}.hidden = true; {q(f'{form} .sv-send')}.click(); 1")
    await browser.wait_for(
        f"!{q(f'{form} .sv-msg')}.hidden && {q(f'{form} .sv-msg')}.className !== 'sv-msg'", 15
    )
    return str(await browser.js(f"{q(f'{form} .sv-msg')}.className + '|' + "
                                f"{q(f'{form} .sv-msg')}.textContent"))  # fmt: skip


async def test_the_centre_supervises_a_vehicle_alarm_from_its_detail(mosquitto, tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    port = free_port()
    hub = Hub(
        load_registry(cfg, [ROOT / "profiles"]),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=port),
        extra_keys=KEYS,
    )
    layout = TopicLayout()
    commands: list[dict[str, Any]] = []

    async def listen(mq: aiomqtt.Client) -> None:
        async for m in mq.messages:
            commands.append(orjson.loads(bytes(m.payload)))  # type: ignore[arg-type]

    async with (
        running_hub(hub),
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k-op"}
        ) as api,
    ):
        await mq.subscribe(layout.vehicle_commands(), qos=1)
        listening = asyncio.create_task(listen(mq))
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
        try:
            async with _page(port, "k-ent", "zh") as ent:
                extra = await _detail(ent, alarm)
                await asyncio.sleep(0.3)  # (drawn: the detail's buttons are there at once)
                assert await ent.js(f"{q(f'{extra} .sv-from-alarm')}") is None

            async with _page(port, "k-op", "zh") as op:
                extra = await _detail(op, alarm)
                button = f"{extra} .sv-from-alarm"
                await op.wait_for(f"{q(button)} !== null")
                assert await op.js(f"{q(button)}.textContent") == "督办"
                await op.js(f"{q(button)}.click()")
                await op.wait_for(f"{q(DIALOG)}?.open === true")
                # the vehicle by its plate, the kind in Chinese
                what = await op.js(f"{q(f'{DIALOG} .sv-what')}.textContent")
                assert what.startswith(f"#{alarm} · 苏A·D1234 · 超速 (平台研判) · "), what
                said = await _send(op, now - 3_600_000, "urgent", "请立即处置")
                assert said == (
                    "sv-msg bad|请检查：督办截止时间（北京时间）。"
                    "督办未下发：422 截止时间须晚于现在，且不超过 30 天"
                ), said
                assert commands == []
                deadline = now + 2 * 3_600_000
                said = await _send(op, deadline, "urgent", "请立即处置")
                # what is known: the broker took it; the gateway's receipt is awaited
                sid = int(await op.js(f"{q(DIALOG)}.dataset.supervision"))
                assert said.startswith(f"sv-msg wait|督办 #{sid}（苏A·D1234，截止 "), said
                assert "已交消息服务器，等待 JT/T 809 网关回执" in said, said
                assert "未连接 JT/T 809 平台时不会有回执" in said, said
                # the gateway answers that no platform serves the vehicle: said in the dialog
                receipt = {"supervision_id": sid, "receipt": "no_platform", "platform": "",
                           "at": time.time_ns() // 1_000_000}  # fmt: skip
                await mq.publish(
                    layout.gateway_supervision("chem-logistics", "gw809"),
                    orjson.dumps(receipt), qos=1,
                )  # fmt: skip
                await op.wait_for(f"{q(DIALOG)}.dataset.receipt === 'no_platform'", 10)
                msg = await op.js(f"{q(f'{DIALOG} .sv-msg')}.className + '|' + "
                                  f"{q(f'{DIALOG} .sv-msg')}.textContent")  # fmt: skip
                assert msg.startswith(f"sv-msg bad|督办 #{sid} 未发出：无 JT/T 809 平台连接"), msg
                await op.js(f"{q(f'{DIALOG} .sv-close')}.click()")
                await op.wait_for(f"{q(DIALOG)} === null")
                assert await op.js("document.activeElement?.classList.contains('sv-from-alarm')")
                # a supervisor's name over the field's 16 bytes of GBK is stopped in the page
                await op.js(f"{q(button)}.click()")
                await op.wait_for(f"{q(DIALOG)}?.open === true")
                who = f"{DIALOG} [name=supervisor]"
                await op.js(
                    f"{q(who)}.value = '张三李四王五赵六孙七周八';"
                    f"{q(who)}.dispatchEvent(new Event('input')); 1"
                )
                assert (
                    await op.js(f"{q(who)}.validationMessage")
                    == "超过 16 字节（一个汉字占 2 字节）"
                )
                assert await op.js(f"{q(who)}.getAttribute('aria-invalid')") == "true"
                assert await op.js(f"{q(f'{DIALOG} form')}.checkValidity()") is False
                await op.js(
                    f"{q(who)}.value = '张三'; {q(who)}.dispatchEvent(new Event('input')); 1"
                )
                assert await op.js(f"{q(who)}.getAttribute('aria-invalid')") is None
                # no answer from the hub: it may have sent it, the operator is told to look first
                await op.js(
                    "window.__f = window.fetch; window.fetch = (u, i) => "
                    "String(u).includes('/supervise') ? Promise.reject(new TypeError('Failed to "
                    "fetch')) : window.__f(u, i); 1"
                )
                said = await _send(op, deadline, "normal", "")
                assert said.startswith(
                    "sv-msg bad|未收到平台应答（Failed to fetch），不确定是否已下发"
                ), said
                await op.js("window.fetch = window.__f; 1")
                # signed out with the dialog open: the dialog goes with the key
                await op.js(f"{q('#logout')}.click()")
                await op.wait_for(f"!{q('#login')}.hidden")
                assert await op.js(f"{q(DIALOG)}") is None

            await eventually(lambda: asyncio.sleep(0, commands), 10, "the command published")
            (command,) = commands
            assert command["command"] == "supervise_alarm"
            assert (command["supervision_id"], command["alarm_id"]) == (sid, alarm)
            assert command["level"] == "urgent" and command["supervisor"] == "zhang"
            # the datetime input is to the minute, China time
            assert abs(command["deadline"] - deadline) < 60_000
            detail = await get_json(api, f"/api/v1/alarms/{alarm}")
            said = [e for e in detail["events"] if e.get("comment", "").startswith("督办")]
            mine = [e for e in said if e["actor"] == "zhang"]
            assert len(mine) == 1 and "请立即处置" in mine[0]["comment"], said
            # and the gateway's receipt, journaled by the hub
            gateway = [e["actor"] for e in said if e["actor"] != "zhang"]
            assert gateway == ["gw809 (JT/T 809 gateway)"], said
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
