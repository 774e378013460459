"""The dashboard in headless Chromium: log in with a key, see a methane alarm appear live, and
answer it from the alarm list (acknowledge, shelve, comment, disposal steps, the journal).
Screenshots go to build/screenshots/ for review."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest
from cdp import Browser

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, get_json, mine_registry, running_hub
from services import free_port

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CST = timezone(timedelta(hours=8))
OPERATOR, VIEWER, ADMIN = "k-operator-1", "k-viewer-1", "k-admin-1"


def _keys() -> list[ApiKeySpec]:
    return [
        ApiKeySpec(name="op", sha256=hash_key(OPERATOR), role="operator"),
        ApiKeySpec(name="root", sha256=hash_key(ADMIN), role="admin"),
        ApiKeySpec(name="watch", sha256=hash_key(VIEWER), role="viewer", tenants=("north-coal",)),
    ]


async def _publish_methane(
    broker_port: int, start_ms: int, values: tuple[float, ...], first_seq: int = 0
) -> None:
    """Readings of T1 (and a calm T0), one a second from `start_ms`, as the gateway sends them
    (numbered from `first_seq`: the hub drops a batch number it has already seen)."""
    keys = ("ch4_t1", "ch4_t0")
    async with aiomqtt.Client("127.0.0.1", broker_port) as mq:
        for seq, value in enumerate(values):
            batch = TelemetryBatch(
                "gw1",
                "kj-sub-3",
                7,
                first_seq + seq,
                keys,
                np.arange(2, dtype=np.uint16),
                np.full(2, start_ms + seq * 1000, np.int64),
                np.array([value, 0.3]),
                np.zeros(2, np.uint8),
            )
            await mq.publish(
                TopicLayout().telemetry("north-coal", "face-1301", "kj-sub-3"),
                encode(batch),
                qos=1,
            )


def q(selector: str) -> str:
    """A JavaScript expression for the first element matching `selector`."""
    return f"document.querySelector({json.dumps(selector)})"


async def _login(browser: Browser, key: str) -> None:
    await browser.wait_for(
        "document.body.dataset.ready === '1' && document.querySelector('#app').hidden"
    )
    await browser.js(f"{q('#key')}.value = {json.dumps(key)}")
    await browser.js(f"{q('#login-form button')}.click()")
    await browser.wait_for(f"!{q('#app')}.hidden")
    await browser.wait_for(f"{q('#live')}.classList.contains('on')")


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

            # the three readings fall in one window of the trend's 3 s (windows start at 0 ms)
            started = time.time_ns() // 1_000_000 // 3000 * 3000
            await _publish_methane(mosquitto.port, started, (0.4, 1.2, 1.6))
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
            await _trend_checks(browser, mosquitto.port, started)
            await browser.js("document.querySelector('#lang').click()")
            # in Chinese the level is the pack's 断电 (power cut), its name kept as the title
            await browser.wait_for(
                "document.querySelector('#alarms tbody tr td:nth-child(3)')?.innerText === '断电'"
            )
            title = await browser.js(
                "document.querySelector('#alarms tbody tr td:nth-child(3)').title"
            )
            assert title == "above power_cut"
            # a tile's kind as an operator says it, under the sensor's tag and its id
            kind = await browser.js(f"{q('.tile[data-sensor=ch4-t1] .k')}.innerText")
            assert kind == "甲烷"
            heading = await browser.js(f"{q('.tile[data-sensor=ch4-t1] .n')}.innerText")
            assert heading == "T1"
            assert await browser.js(f"{q('.tile[data-sensor=ch4-t1] .id')}.innerText") == "ch4-t1"
            await browser.screenshot(SHOTS / "02-methane-alarm-live.png")
            # a vehicle's alarms of the same name tell who judged them, all in Chinese
            labels = await browser.js(
                """(async () => {
                  const m = await import('/static/alarms.js');
                  const t = (k) => m.STRINGS.zh[k] ?? k;
                  return [
                    ['above', 'overspeed', 'road-transport.hazmat-speed'],
                    ['overspeed', 'overspeed', 'fleet'],
                    ['no_data', 'device_comm_loss', 'comm_loss'],
                    ['no_data', 'gateway_offline', 'gateway'],
                    ['terminal_emergency', 'terminal_emergency', 'terminal'],
                    ['offline', 'offline', 'fleet'],
                  ].map(([side, level_name, rule]) => m.kindLevel({side, level_name, rule}, t));
                })()"""
            )
            assert labels == [
                "超速",
                "超速 (平台研判)",
                "设备通讯中断",
                "网关离线",
                "紧急报警 (终端上报)",
                "车辆离线 (平台研判)",
            ]
        finally:
            await browser.close()


async def _trend_checks(browser: Browser, broker: int, started: int) -> None:
    """The trend of T1 draws the lowest and the highest reading of each window, follows new
    readings while it ends now, and never shows one sensor's curve under another's name; a
    tile keeps the newer of two readings by event time."""
    trend = q("#trend")
    await browser.js(f"{q('.tile[data-sensor=ch4-t1]')}.click()")
    await browser.wait_for(f"{trend}.dataset.max === '1.6'", timeout_s=10)
    assert await browser.js(f"{trend}.dataset.min") == "0.4"  # not only the peaks
    assert await browser.js(f"{q('#trend-name')}.textContent") == "ch4-t1"
    # T1 reads 1.8 (no new alarm event): the trend ending now draws it by itself
    await _publish_points(broker, started + 4000, 20, ch4_t1=1.8)
    await browser.wait_for(f"{trend}.dataset.max === '1.8'", timeout_s=6)
    # a sensor without history (a device's alarm row, say): no curve of T1 under its name
    await browser.js(
        """(() => { const f = window.fetch; window.fetch = (u, o) => String(u).includes(
             '/sensors/ch4-t0/history') ? Promise.resolve(new Response('{}', {status: 404}))
             : f(u, o); })()"""
    )
    await browser.js(f"{q('.tile[data-sensor=ch4-t0]')}.click()")
    await browser.wait_for(f"{trend}.dataset.none === '1'", timeout_s=5)
    assert await browser.js(f"{trend}.dataset.points") == "0"
    assert await browser.js(f"{q('#trend-name')}.textContent") == "ch4-t0"
    # a reading older than the one shown (a gateway's backlog) does not take the tile back
    await _publish_points(broker, started - 60_000, 21, ch4_t0=0.9)
    await _publish_points(broker, started + 5000, 22, ch4_t2=0.25)
    await browser.wait_for(f"{q('.tile[data-sensor=ch4-t2]')}.innerText.includes('0.25')", 5)
    assert "0.3" in await browser.js(f"{q('.tile[data-sensor=ch4-t0] .v')}.innerText")


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _cst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


class AlarmRow:
    """Drives one alarm's row of the dashboard's alarm list through the DevTools protocol."""

    def __init__(self, browser: Browser, alarm_id: int) -> None:
        self.browser = browser
        self.row = f"tr.alarm[data-alarm='{alarm_id}']"
        self.extra = f"tr.extra[data-for='{alarm_id}']"
        self.form_text = ""  # the text of the last form submitted, as shown

    async def value(self, selector: str, prop: str) -> Any:
        return await self.browser.js(f"{q(selector)}?.{prop}")

    async def state(self) -> str | None:
        return await self.value(f"{self.row} .isa", "dataset.isa")  # type: ignore[no-any-return]

    async def wait_state(self, want: str) -> None:
        await self.browser.wait_for(
            f"{q(self.row + ' .isa')}?.dataset.isa === {json.dumps(want)}", timeout_s=5
        )

    async def buttons(self) -> list[str]:
        return await self.browser.js(  # type: ignore[no-any-return]
            f"[...document.querySelectorAll({json.dumps(self.row + ' button')})]"
            ".map((b) => b.dataset.act)"
        )

    async def press(self, verb: str) -> None:
        """Click the row's `verb` button once it is there and enabled (not mid-request)."""
        button = q(f"{self.row} button[data-act={verb}]")
        await self.browser.wait_for(f"{button} && !{button}.disabled", timeout_s=5)
        await self.browser.js(f"{button}.click()")

    async def submit(self, verb: str, **fields: str) -> None:
        """Open the inline form of `verb`, fill it in and submit it."""
        await self.press(verb)
        form = f"{self.extra} form.act-form[data-form={verb}]"
        await self.browser.wait_for(f"!!{q(form)}", timeout_s=5)
        self.form_text = await self.value(form, "innerText")
        for name, text in fields.items():
            await self.browser.js(f"{q(f'{form} [name={name}]')}.value = {json.dumps(text)}")
        await self.browser.js(f"{q(form + ' button[type=submit]')}.click()")

    async def message(self) -> str:
        await self.browser.wait_for(f"{q(self.row + ' .msg')}.textContent", timeout_s=5)
        return await self.value(f"{self.row} .msg", "textContent")  # type: ignore[no-any-return]

    async def expand(self) -> None:
        await self.browser.js(f"{q(self.row + ' td:nth-child(2)')}.click()")
        await self.browser.wait_for(f"!!{q(self.extra + ' table.journal')}", timeout_s=5)

    async def journal(self) -> list[list[str]]:
        return await self.browser.js(  # type: ignore[no-any-return]
            f"[...document.querySelectorAll({json.dumps(self.extra + ' table.journal tr')})]"
            ".slice(1).map((r) => [...r.cells].map((c) => c.innerText.trim()))"
        )


@pytest.mark.slow
async def test_operator_answers_the_alarm_from_the_list(mosquitto, tmp_path):
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=_keys(),
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    async with running_hub(hub), httpx.AsyncClient(base_url=base, headers=headers) as api:

        async def alarm() -> dict[str, Any]:
            return await get_json(api, f"/api/v1/alarms/{alarm_id}")  # type: ignore[no-any-return]

        async def raised() -> int | None:
            found = await get_json(api, "/api/v1/alarms", sensor="ch4-t1", state="active")
            return found[0]["id"] if found else None

        browser = Browser()
        try:
            await browser.open(f"{base}/")
            await browser.wait_for("document.body.dataset.ready === '1'")
            if await browser.js("document.documentElement.lang") != "zh-CN":
                await browser.js(f"{q('#lang')}.click()")
            await _login(browser, VIEWER)
            await _publish_methane(mosquitto.port, _ms() - 3000, (0.4, 1.2, 1.6))
            alarm_id = await eventually(raised, 10, "the methane alarm")
            row = AlarmRow(browser, alarm_id)

            # a viewer may look but not act: it is offered no button that could only fail
            await row.wait_state("unack")
            assert await row.value(f"{row.row} .isa", "innerText") == "未确认"
            assert await row.buttons() == []
            assert await row.value(f"{row.row} .acts", "innerText") == "只读"

            # the open journal follows the live stream: a comment made elsewhere appears
            await row.expand()
            said = await api.post(
                f"/api/v1/alarms/{alarm_id}/comment", json={"note": "调度室: 通风已加大"}
            )
            assert said.status_code == 200
            await browser.wait_for(
                f"{q(row.extra + ' table.journal')}.innerText.includes('通风已加大')", 5
            )

            # the night dispatcher's own key, named as the journal should name him (the mine's
            # duty room: an operator of its tenant, whose acknowledgement is the site's)
            made = await api.post(
                "/api/v1/api-keys",
                json={"name": "王工", "role": "operator", "tenants": ["north-coal"]},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert made.status_code == 201, made.text
            await browser.js(f"{q('#logout')}.click()")
            await _login(browser, made.json()["key"])

            # acknowledge: in the row at once, and in the alarm's record with the key's name;
            # a red one (the power cut) asks its note first, as the hub does
            await row.wait_state("unack")
            await row.submit("ack", note="断电已确认，通知瓦检员")
            assert "红色报警" in row.form_text, row.form_text
            await row.wait_state("ack")
            a = await alarm()
            assert (a["isa_state"], a["acked"]) == ("ack", True)
            assert (a["events"][-1]["kind"], a["events"][-1]["actor"]) == ("acknowledged", "王工")
            assert a["events"][-1]["comment"] == "断电已确认，通知瓦检员"
            assert "ack" not in await row.buttons()

            # the shift handover, from the hub itself: the alarm active and acknowledged
            await browser.js(f"{q('#handover-open')}.click()")
            acked = q("#handover-body [data-section=active_ack]")
            await browser.wait_for(f"{acked}?.innerText.includes('ch4-t1')", 5)
            assert "王工" in await browser.js(f"{q('#handover-body .facts')}.innerText")
            raised = await browser.js(f"{q('.ho-raised tbody')}.innerText")
            assert raised.split()[:2] == ["1", "1"], raised  # one alarm, red
            await browser.screenshot(SHOTS / "04-handover.png")
            await browser.js(f"{q('#handover-close')}.click()")

            # shelve for 8 h with a reason
            asked = _ms()
            await row.submit("shelve", reason="T1 探头标定 calibration", duration="28800")
            # the form says the shelve is the point's, up to this alarm's tier (helper-99)
            assert "搁置整个测点" in row.form_text and "及以下" in row.form_text, row.form_text
            await row.wait_state("shelved")
            assert await row.value(f"{row.row} .isa", "innerText") == "已搁置"
            a = await alarm()
            assert a["isa_state"] == "shelved"
            assert asked + 28_800_000 <= a["shelved_until"] <= _ms() + 28_800_000
            last = a["events"][-1]
            assert (last["kind"], last["actor"], last["comment"]) == (
                "shelved",
                "王工",
                "T1 探头标定 calibration",
            )
            assert await row.buttons() == ["unshelve", "comment", "verify"]
            assert not await browser.js(f"!!{q(row.extra + ' form')}")  # done: the form closes

            # a comment, seen in the expanded journal with its time in CST and the actor
            await row.submit("comment", note="已通知瓦检员复查")
            await browser.wait_for(f"{q(row.row + ' .isa')} && !{q(row.extra + ' form')}", 5)
            await row.expand()
            a = await alarm()
            last = a["events"][-1]
            assert last["kind"] == "commented"
            assert (await row.journal())[-1] == [
                _cst(last["ts"]),
                "备注",
                "断电",
                "1.6 %CH4",
                "王工",
                "已通知瓦检员复查",
                "已搁置",
            ]
            # each event's level and value: what raised and what escalated the alarm
            assert [r[1:4] for r in (await row.journal())[:2]] == [
                ["报警", "报警", "1.2 %CH4"],
                ["升级", "断电", "1.6 %CH4"],
            ]
            kinds = [r[1] for r in await row.journal()]
            assert kinds[-4:] == ["备注", "确认", "搁置", "备注"]
            assert all(
                re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[0]) for r in await row.journal()
            )

            # a note longer than the hub takes is not cut: counted, and refused with a message
            await row.press("comment")
            form = f"{row.extra} form.act-form[data-form=comment]"
            await browser.wait_for(f"!!{q(form)}", timeout_s=5)
            note = q(form + " [name=note]")
            await browser.js(f"{note}.focus()")
            await browser.call("Input.insertText", text="瓦" * 2001)  # as a paste would
            assert await browser.js(f"{q(form + ' .count')}.textContent") == "2001/2000"
            assert await browser.js(f"{note}.value.length") == 2001
            await browser.js(f"{q(form + ' button[type=submit]')}.click()")
            assert (await row.message()).startswith("超出 2000 字")
            assert (await alarm())["events"][-1]["comment"] == "已通知瓦检员复查"
            # the open form follows a switch of language, keeping what was typed
            await browser.js(f"{q('#lang')}.click()")
            await browser.wait_for(f"{q(form + ' label')}.innerText.startsWith('Comment')", 5)
            assert await browser.js(f"{note}.value.length") == 2001
            assert await browser.js(f"{q(form + ' .count')}.textContent") == "2001/2000"
            await browser.js(f"{q('#lang')}.click()")
            await browser.wait_for(f"{q(form + ' label')}.innerText.startsWith('备注')", 5)
            await browser.js(f"{q(form + ' button.cancel')}.click()")

            # unshelving an active alarm sounds it again: it wants a new acknowledgement
            await row.press("unshelve")
            await row.wait_state("unack")
            await row.submit("ack", note="复查后确认")
            await row.wait_state("ack")

            # disposal: verify, dispose; closing while the gas is still high is refused (409)
            await row.submit("verify", note="现场核实: 便携仪 1.6%")
            await browser.wait_for(f"{q(row.row + ' .disp')}?.dataset.disposal === 'verified'", 5)
            await row.submit("dispose", note="已断电撤人, 加大通风")
            await browser.wait_for(f"{q(row.row + ' .disp')}?.dataset.disposal === 'disposed'", 5)
            await row.submit("close", note="办结")
            # the hub's reason, in Chinese
            assert await row.message() == "409 报警仍未恢复，不能办结"
            assert (await alarm())["disposal"] == "disposed"
            assert await browser.js(f"!!{q(row.extra + ' form[data-form=close]')}")  # kept open
            await browser.screenshot(SHOTS / "03-alarm-lifecycle.png")

            # the gas comes down: the row follows live (ack -> normal); now the close goes
            # through: the mine's close of a red alarm waits for the centre's review (待审核),
            # and once the centre approves it the finished alarm leaves the list of open alarms
            # (still under "all")
            await _publish_methane(mosquitto.port, _ms(), (0.5,), first_seq=10)
            await row.wait_state("normal")
            await browser.js(
                f"{q(row.extra + ' form[data-form=close] button[type=submit]')}.click()"
            )
            await browser.wait_for(f"{q(row.row + ' .disp')}?.dataset.disposal === 'review'", 5)
            approved = await api.post(
                f"/api/v1/alarms/{alarm_id}/review",
                json={"decision": "approve", "note": "同意销号"},
            )  # (the operator key of every tenant: the centre)
            assert approved.status_code == 200, approved.text
            await browser.wait_for(f"!{q(row.row)}", 5)
            await browser.js(f"{q('#alarm-filter button[data-filter=all]')}.click()")
            await browser.wait_for(f"{q(row.row + ' .disp')}?.dataset.disposal === 'closed'", 5)
            a = await alarm()
            assert (a["isa_state"], a["disposal"]) == ("normal", "closed")
        finally:
            await browser.close()


@pytest.mark.slow
async def test_a_revoked_key_is_asked_for_again_not_retried_forever(mosquitto, tmp_path):
    """A wall display's key revoked (or expired): its event stream ends, and the dashboard
    goes back to the login with the reason instead of retrying the stream every 2 s."""
    admin = {"Authorization": "Bearer k-admin-1"}
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[ApiKeySpec(name="admin", sha256=hash_key("k-admin-1"), role="admin")],
    )
    # a quiet stream checks its key again at each keep-alive: 1 s, not the default 15 s, so the
    # revocation is seen within about a second (the page's answer to it is what is tested)
    hub.stream.heartbeat_s = 1.0
    async with running_hub(hub), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
        made = await api.post(
            "/api/v1/api-keys",
            json={"name": "wall", "role": "viewer", "tenants": ["north-coal"]},
            headers=admin,
        )
        assert made.status_code == 201, made.text
        browser = Browser()
        try:
            await browser.open(f"http://127.0.0.1:{port}/")
            await _login(browser, made.json()["key"])
            assert (await api.delete("/api/v1/api-keys/wall", headers=admin)).status_code == 204
            await browser.wait_for(f"!{q('#login')}.hidden", timeout_s=40)
            assert await browser.js(f"{q('#app')}.hidden") is True
            message = await browser.js(f"{q('#login-error')}.textContent")
            assert "no longer valid" in message or "已失效" in message
            assert await browser.js("sessionStorage.getItem('hh-key')") is None
        finally:
            await browser.close()


async def _publish_points(broker_port: int, ts_ms: int, seq: int, **points: float) -> None:
    """One batch of the substation's `points` (profile keys: ch4_t2=1.2) measured at `ts_ms`."""
    keys = tuple(points)
    async with aiomqtt.Client("127.0.0.1", broker_port) as mq:
        batch = TelemetryBatch(
            "gw1",
            "kj-sub-3",
            7,
            seq,
            keys,
            np.arange(len(keys), dtype=np.uint16),
            np.full(len(keys), ts_ms, np.int64),
            np.array(list(points.values()), dtype=np.float64),
            np.zeros(len(keys), np.uint8),
        )
        await mq.publish(
            TopicLayout().telemetry("north-coal", "face-1301", "kj-sub-3"), encode(batch), qos=1
        )


@pytest.mark.slow
async def test_a_page_open_across_a_restart_with_a_fresh_store_shows_only_the_new_hubs_data(
    mosquitto, tmp_path
):
    """The demo starts with empty stores, as does a hub given a restored state.db: its alarm ids
    start again at 1. A page left open across the restart reads everything afresh: the old
    run's alarm 1 (with its long journal) gives way to the new run's alarm 1, a form opened on
    the old one goes with it, and the tiles show the new hub's readings, not the old one's.
    While the hub is away the tiles say they are not live and no action can be taken."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {OPERATOR}"}

    def hub(data: str) -> Hub:
        return Hub(
            mine_registry(1502, 1.0),
            HubSettings(data_dir=tmp_path / data, broker_port=mosquitto.port, api_port=port),
            extra_keys=_keys(),
        )

    async def only_alarm(api: httpx.AsyncClient) -> dict[str, Any] | None:
        found = await get_json(api, "/api/v1/alarms", state="active")
        return found[0] if len(found) == 1 else None

    browser = Browser()
    try:
        async with running_hub(hub("a")), httpx.AsyncClient(base_url=base, headers=headers) as api:
            await browser.open(f"{base}/")
            await _login(browser, OPERATOR)
            await _publish_methane(mosquitto.port, _ms() - 3000, (0.4, 1.2, 1.6))
            old = await eventually(lambda: only_alarm(api), 10, "the old run's methane alarm")
            for k in range(3):  # a long journal: its last event id is above the new run's
                said = await api.post(f"/api/v1/alarms/{old['id']}/comment", json={"note": f"{k}"})
                assert said.status_code == 200
            row = AlarmRow(browser, old["id"])
            await browser.wait_for(f"{q(row.row)}?.innerText.includes('ch4-t1')", 5)
            await row.press("comment")
            form = f"{row.extra} form.act-form[data-form=comment]"
            await browser.wait_for(f"!!{q(form)}", 5)
            await browser.js(f"{q(form + ' [name=note]')}.value = '旧报警的备注'")
            await browser.wait_for(f"{q('.tile[data-sensor=ch4-t1]')}?.innerText.includes('1.6')")
        # the hub is away: the page says so on every tile, and acts on nothing
        await browser.wait_for(f"{q('#live')}.classList.contains('off')", 10)
        await browser.wait_for(f"{q('.tile[data-sensor=ch4-t1]')}.classList.contains('offline')")
        assert await browser.js(f"{q(row.row + ' button[data-act=ack]')}.disabled") is True
        await browser.screenshot(SHOTS / "04-hub-away.png")

        async with running_hub(hub("b")), httpx.AsyncClient(base_url=base, headers=headers) as api:
            # the new run: alarm 1 is T2's, with a shorter journal than the old alarm 1 had;
            # T0 reports a reading of ten minutes ago (stale by age), T1 nothing yet
            await _publish_points(mosquitto.port, _ms() - 600_000, 100, ch4_t0=0.2)
            await _publish_points(mosquitto.port, _ms() - 1000, 101, ch4_t2=1.2)
            new = await eventually(lambda: only_alarm(api), 10, "the new run's alarm")
            assert new["id"] == old["id"] and new["sensor"] == "ch4-t2"
            await browser.wait_for(f"{q('#live')}.classList.contains('on')", 20)
            await browser.wait_for(f"{q(row.row)}?.innerText.includes('ch4-t2')", 10)
            assert "ch4-t1" not in await browser.js(f"{q('#alarms tbody')}.innerText")
            assert not await browser.js(f"!!{q(form)}")  # the old alarm's form went with it
            t1 = q(".tile[data-sensor=ch4-t1]")
            assert await browser.js(f"{t1}.dataset.quality") == "none"
            assert not await browser.js(f"{t1}.classList.contains('offline')")
            t0 = q(".tile[data-sensor=ch4-t0]")
            await browser.wait_for(f"{t0}?.dataset.quality === 'stale'", 5)
            # its buttons act on the new alarm: the hub's record of it takes the comment
            await row.submit("comment", note="新报警")
            await browser.wait_for(f"!{q(row.extra + ' form')}", 5)
            a = await get_json(api, f"/api/v1/alarms/{new['id']}")
            assert (a["sensor"], a["events"][-1]["comment"]) == ("ch4-t2", "新报警")
            await browser.screenshot(SHOTS / "05-after-restart.png")
    finally:
        await browser.close()


# the page reads the hub's readiness every 15 s (api/static/health.js): every 300 ms here
FAST_HEALTH = (
    "localStorage.setItem('hh-lang', 'zh');"
    "const __si = window.setInterval.bind(window);"
    "window.setInterval = (f, ms, ...a) => __si(f, ms === 15000 ? 300 : ms, ...a);"
)


@pytest.mark.slow
async def test_a_broker_outage_is_a_banner_over_the_page_until_the_hub_hears_again(
    mosquitto, tmp_path
):
    """A sysadmin's role-play: the broker stopped, and the page said 实时 live (its stream is
    the hub's API, which stayed up) over a hub that heard nothing. A banner at the top says
    告警中心未收到数据：消息代理不可达 and since when, in English too, and goes once the hub is
    subscribed again."""
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=_keys(),
    )
    banner = q("#hub-health")
    text = f"{banner}.textContent"
    async with running_hub(hub):
        browser = Browser()
        try:
            await browser.open("about:blank")
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=FAST_HEALTH)
            await browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            await _login(browser, OPERATOR)
            await asyncio.sleep(0.5)  # a look or two at a ready hub: no banner
            assert await browser.js(f"{banner}.hidden")
            stopped = _ms()
            await asyncio.to_thread(mosquitto.stop)
            await browser.wait_for(f"!{banner}.hidden", 15)
            said = await browser.js(text)
            since = re.fullmatch(
                r"告警中心未收到数据：消息代理不可达（自 (.+) 起，北京时间）", said
            )
            assert since, said
            assert _cst(stopped - 1000) <= since[1] <= _cst(_ms()), (said, _cst(stopped))
            assert await browser.js(f"{banner}.dataset.cause") == "broker"
            # the live badge is the page's stream, apart: the banner says the hub hears nothing
            assert await browser.js(f"{q('#live')}.classList.contains('on')")
            await browser.screenshot(SHOTS / "13-broker-outage-banner.png")
            await browser.js(f"{q('#lang')}.click()")
            assert await browser.js(text) == (
                f"The hub is not receiving data: the broker is unreachable (since {since[1]} CST)"
            )
            await asyncio.to_thread(mosquitto.start)
            await browser.wait_for(f"{banner}.hidden", 30)  # the hub's backoff: 10 s at most
            assert await browser.js(text) == ""
        finally:
            await browser.close()
