"""The dashboard's interlock bypass approvals page (联锁旁路审批, api/static/bypasses.js) in
headless Chromium against a real hub: an enterprise's shift engineer records the approval of its
bypassed loop from the `bypass_unapproved` alarm's detail and the alarm clears in the alarm list;
the hub's refusals are shown in words naming the fields; another enterprise sees none of it; the
centre sees both enterprises' approvals, records and revokes its own, and an enterprise's
revocation of the centre's record shows the hub's 403 as the reason; a full list pages with
`before`, and the 21st approval not ended is refused (409); a row revoked deep in it is redrawn in
place; a write the hub does not answer is said unsure, a slow one keeps its form."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest
from cdp import Browser
from dashboard_page import signed_in
from test_api_alarms import KEYS
from test_bypass_approvals import CONFIG
from test_bypass_approvals_hub import unapproved

from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_profiles
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, running_hub
from services import free_port

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CST = timezone(timedelta(hours=8))
FORM = "#bp-form form[data-form=record]"
MINUTE_MS, HOUR_MS = 60_000, 3_600_000
pytestmark = pytest.mark.slow
# the two enterprises of the bypass tests, and one with no bypass flag (a gas detector only)
HUB_CONFIG = (
    CONFIG
    + """
  - id: east-gas
    sites:
      - id: depot
        devices:
          - id: det-9
            profile: gas-one
            sensors:
              - {{id: lel-9, point: gas, kind: flammable_gas,
                 levels: [{{name: level1, tier: yellow, above: 25, recover: 23}}]}}
"""
)
# the page's writes held (`hold`: until window.__release()), or answered but the answer lost
# (`lose`: the hub did it, the page sees a network error)
WRITES = """window.__f ??= window.fetch; window.__mode = '';
window.fetch = async (u, i) => {
  if (i?.method !== 'POST' || !window.__mode) return window.__f(u, i);
  if (window.__mode === 'hold') {
    await new Promise((r) => { window.__release = r; });
    return window.__f(u, i);
  }
  await window.__f(u, i);
  throw new TypeError('Failed to fetch');
}; 1"""


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def _row(approval: int, inside: str = "") -> str:
    return q(f"#bp-list tr[data-approval='{approval}']{inside}")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _input(ms: int) -> str:
    """A time as a datetime-local input takes it, in China time."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(CST).strftime("%Y-%m-%dT%H:%M")


def _hub(port: int, broker: int, data: Path) -> Hub:
    config = parse_document(HUB_CONFIG.format(within=1), HubConfig, "bypass.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    registry = build_registry(config, profiles, packs, "bypass.yaml")
    settings = HubSettings(data_dir=data, broker_port=broker, api_port=port)
    return Hub(registry, settings, extra_keys=KEYS)


@asynccontextmanager
async def _page(port: int, who: str, lang: str = "en") -> AsyncIterator[Browser]:
    """A browser logged in with `who`'s key, its bypass approvals page open and read, in `lang`."""
    async with signed_in(port, f"k-{who}", lang) as browser:
        await browser.js(f"{q('#bypasses-open')}.click()")
        await _listed(browser)
        yield browser


async def _listed(browser: Browser) -> list[dict[str, Any]]:
    """The rows of the list once read: id, tenant, party, cover and their text."""
    await browser.wait_for(
        f"{q('#bp-loading')}.hidden && (!{q('#bp-empty')}.hidden"
        " || document.querySelectorAll('#bp-list tr.bp-row').length)"
    )
    rows = await browser.js(
        """[...document.querySelectorAll('#bp-list tr.bp-row')].map((tr) => ({
             id: tr.dataset.approval, tenant: tr.dataset.tenant, party: tr.dataset.party,
             cover: tr.dataset.cover, text: tr.innerText}))"""
    )
    return list(rows)


async def _fill(browser: Browser, form: str, **values: str) -> None:
    for name, value in values.items():
        field = q(f"{form} [name={name}]")
        await browser.js(
            f"{field}.value = {json.dumps(value)}; {field}.dispatchEvent(new Event('change')); 1"
        )


async def _choose(browser: Browser, select: str, value: str) -> None:
    """A filter of the page chosen."""
    said = json.dumps(value)
    await browser.js(
        f"{q(select)}.value = {said}; {q(select)}.dispatchEvent(new Event('change')); 1"
    )


async def _submit(browser: Browser, form: str) -> str:
    """Submit `form`; the page's note once the hub answered (its whole text)."""
    await browser.js(f"{q('.bp-msg')}?.remove(); {q(f'{form} button[type=submit]')}.click(); 1")
    return str(await browser.wait_for(f"{q('.bp-msg:not([hidden])')}?.innerText"))


async def _api(port: int, who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
        r = await client.post(path, json=body, headers={"Authorization": f"Bearer k-{who}"})
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


async def _bypassed_since(mq: aiomqtt.Client, ts: int) -> None:
    """The chem loop's bypass flag set, read at `ts` (its bypass began then)."""
    batch = TelemetryBatch(
        "gw",
        "sis-1",
        1,
        1,
        ("bypassed",),
        np.zeros(1, np.uint16),
        np.array([ts], np.int64),
        np.array([1.0]),
        np.zeros(1, np.uint8),
    )
    await mq.publish(TopicLayout().telemetry("acme-chem", "plant", "sis-1"), encode(batch), qos=1)


def _approval(sensor: str, start: int, hours: float = 8) -> dict[str, Any]:
    return {
        "sensor": sensor,
        "approved_by": "李工",
        "reason": "仪表检修更换变送器，联锁临时旁路；仪表检修更换变送器，联锁临时旁路",
        "measures": "专人监护；手动控制；每15分钟巡检",
        "valid_from": start,
        "until": start + int(hours * 3_600_000),
    }


async def test_an_enterprise_approves_its_bypass_from_the_alarm_the_centre_revokes_its_own(
    mosquitto, tmp_path
):
    port = free_port()
    async with (
        running_hub(_hub(port, mosquitto.port, tmp_path)),
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
    ):
        # the loop bypassed 2 h ago, no approval: raised at once (1 s after its start)
        began = (now_ms() - 2 * HOUR_MS) // MINUTE_MS * MINUTE_MS + 10_000
        await _bypassed_since(mq, began)

        async def raised() -> int | None:
            found = await unapproved(api)
            return found[-1]["id"] if found and found[-1]["state"] == "active" else None

        alarm = await eventually(raised, 15, "bypass_unapproved raised")
        async with _page(port, "chem", "zh") as chem:
            assert await chem.js(f"{q('#bypasses-open')}.textContent") == "旁路审批"
            assert await chem.js(f"{q('#bypasses-panel h2')}.textContent") == "联锁旁路审批"
            assert await _listed(chem) == []
            assert await chem.js(f"{q('#bp-tenant-wrap')}.hidden") is True  # its own enterprise
            # the alarm's detail offers to record the approval, the form opens on its flag
            row = f"tr.alarm[data-alarm='{alarm}']"
            await chem.wait_for(f"{q(row)} !== null", 15)
            await chem.js(f"{q(row)}.click()")
            button = f"tr.extra[data-for='{alarm}'] .bp-from-alarm"
            await chem.wait_for(f"{q(button)} !== null")
            assert await chem.js(f"{q(button)}.textContent") == "登记旁路审批"
            # (the page closed: it opens, and the form's first field to fill takes the focus)
            await chem.js(f"{q('#bp-close')}.click()")
            assert await chem.js(f"{q('#bypasses-panel')}.hidden") is True
            await chem.js(f"{q(button)}.click()")
            await chem.wait_for(f"{q(FORM)} !== null && {q(f'{FORM} [name=sensor]')}.value")
            assert await chem.js(f"{q('#bypasses-panel')}.hidden") is False
            assert await chem.js(f"{q(f'{FORM} [name=sensor]')}.value") == "sis-bypass"
            asked = await chem.js(f"{q(f'{FORM} .bulk-ask')}.textContent")
            assert asked == f"为报警 #{alarm}（sis-bypass）登记旁路审批"
            assert await chem.js("document.activeElement.name") == "approved_by"
            # valid from when the bypass began (not when the form opened), to the minute
            assert await chem.js(f"{q(f'{FORM} [name=valid_from]')}.value") == _input(began)
            # a bypass begun 31.5 h ago: from 24 h back (less 10 min to fill it in)
            old = await chem.js(
                """(async () => {
                     const m = await import('/static/bypassform.js');
                     const now = Date.now(), minute = Math.floor(now / 60000) * 60000;
                     const at = m.bypassStart({ started_ts: now - 108e6, value: 1.5 }, minute);
                     return [at, now]; })()"""
            )
            earliest = -(-(old[1] - 24 * HOUR_MS + 10 * MINUTE_MS) // MINUTE_MS) * MINUTE_MS
            assert old[0] == earliest, old

            # a blank approver: the hub's 422 names the field, in the page's words
            await _fill(
                chem, FORM, approved_by="   ", reason="进料切断阀检修", measures="专人现场监护"
            )
            said = await _submit(chem, FORM)
            assert said.startswith(
                "有误的项：审批人（姓名、职务）\n平台拒绝（422）：approved_by:"
            ), said
            assert await chem.js(f"{q(f'{FORM} [name=approved_by]')}.ariaInvalid") == "true"
            # an approval that has ended: refused, the until named
            now = now_ms()
            await _fill(
                chem,
                FORM,
                approved_by="张工 (设备部经理)",
                valid_from=_input(now - 3 * 3_600_000),
                until=_input(now - 3_600_000),
            )
            said = await _submit(chem, FORM)
            assert said.startswith(
                "截止时间已过：已结束的审批不覆盖任何旁路，请检查时间\n有误的项：截止时间\n"
                "平台拒绝（422）：until="
            ), said
            assert await chem.js(f"{q(f'{FORM} [name=until]')}.ariaInvalid") == "true"
            assert await chem.js(f"{q(f'{FORM} [name=approved_by]')}.ariaInvalid") is None
            # until before valid_from
            await _fill(chem, FORM, valid_from=_input(now), until=_input(now - 60_000))
            said = await _submit(chem, FORM)
            assert said.startswith("截止时间须晚于起始时间\n有误的项：起始时间、截止时间\n"), said

            # the form as it should be: recorded, and the alarm clears in the alarm list
            await _fill(
                chem,
                FORM,
                valid_from=_input(now),
                until=_input(now + 8 * 3_600_000),
                ticket="SIS-2026-017",
            )
            said = await _submit(chem, FORM)
            assert said == "已登记旁路审批 #1；旁路未审批报警已消除", said
            await chem.wait_for(f"{q(row)}?.classList.contains('cleared')", 10)
            # the alarm cleared: its detail offers the approval no more
            detail = f"tr.extra[data-for='{alarm}']"
            if await chem.js(f"{q(detail)}") is None:
                await chem.js(f"{q(row)}.click()")
            await chem.wait_for(f"{q(detail)} !== null")
            assert await chem.js(f"{q(button)}") is None
            await chem.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 1")
            (got,) = await _listed(chem)
            assert (got["id"], got["party"], got["cover"]) == ("1", "enterprise", "covers")
            for text in (
                "sis-bypass",
                "张工 (设备部经理)",
                "专人现场监护",
                "SIS-2026-017",
                "生效中",
                "企业 · chem",
                _input(now).replace("T", " "),
            ):
                assert text in got["text"], (text, got["text"])
            await chem.screenshot(SHOTS / "bypasses-01-recorded.png")

        # another enterprise sees none of it, and chooses only its own flag
        async with _page(port, "coal") as coal:
            assert await _listed(coal) == []
            assert not await coal.js(f"{q('#bp-empty')}.hidden")
            options = await coal.js(
                "[...document.querySelectorAll('#bp-sensor option')].map((o) => o.value)"
            )
            assert options == ["", "coal-bypass"]

        # the centre sees both enterprises', records one of its own and revokes it
        async with _page(port, "admin") as centre:
            assert await centre.js(f"{q('#bp-tenant-wrap')}.hidden") is False
            # the enterprises with a bypass flag (east-gas has none)
            tenants = await centre.js(
                "[...document.querySelectorAll('#bp-tenant option')].map((o) => o.value)"
            )
            assert tenants == ["", "acme-chem", "north-coal"]
            await centre.js(f"{q('#bp-record')}.click()")
            await centre.wait_for(f"{q(FORM)} !== null")
            await _fill(
                centre,
                FORM,
                sensor="coal-bypass",
                approved_by="王主任 (监管中心)",
                reason="联锁校验",
                measures="中心远程盯控",
            )
            assert await _submit(centre, FORM) == "Bypass approval #2 recorded"
            await centre.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 2")
            rows = await _listed(centre)
            assert [(r["id"], r["tenant"], r["party"]) for r in rows] == [
                ("2", "north-coal", "centre"),
                ("1", "acme-chem", "enterprise"),
            ]
            # only the centre's
            await _choose(centre, "#bp-party", "centre")
            await centre.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 1")
            await centre.js(f"{_row(2, ' .bp-revoke')}.click()")
            revoke = "#bp-list form[data-form=revoke]"
            await centre.wait_for(f"{q(revoke)} !== null")
            assert await centre.js("document.activeElement.name") == "note"
            await _fill(centre, revoke, note="检修提前结束")
            assert await _submit(centre, revoke) == "Bypass approval #2 revoked"
            await centre.wait_for(f"{_row(2)}?.dataset.cover === 'revoked_st'")
            (got,) = await _listed(centre)
            assert "revoked by admin at " in got["text"] and ": 检修提前结束" in got["text"]
            await centre.screenshot(SHOTS / "bypasses-02-centre.png")

        # the centre's own record of the chem loop: the enterprise's revocation is refused (403)
        await _api(port, "admin", "/bypass-approvals", _approval("sis-bypass", now_ms()))
        async with _page(port, "chem", "zh") as chem:
            rows = await _listed(chem)
            assert [(r["id"], r["party"]) for r in rows] == [("3", "centre"), ("1", "enterprise")]
            assert "监管中心 · admin" in rows[0]["text"]
            await chem.js(f"{_row(3, ' .bp-revoke')}.click()")
            revoke = "#bp-list form[data-form=revoke]"
            await chem.wait_for(f"{q(revoke)} !== null")
            await _fill(chem, revoke, note="企业认为不再需要")
            said = await _submit(chem, revoke)
            assert said.startswith(
                "此审批由监管中心登记，只有监管中心可以撤销：请联系监管中心，或登记企业自己的审批\n"
                "平台拒绝（403）：bypass approval 3 was recorded by the supervising centre (admin)"
            ), said
            assert (await _listed(chem))[0]["cover"] == "covers"


async def test_a_long_list_pages_with_before_and_the_21st_approval_not_ended_is_refused(
    mosquitto, tmp_path
):
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        start = now_ms()
        # 19 not ended, 40 revoked, one more not ended: 60 in all, 20 open (the most allowed)
        for _ in range(19):
            await _api(port, "coal", "/bypass-approvals", _approval("coal-bypass", start))
        for n in range(40):
            made = await _api(port, "coal", "/bypass-approvals", _approval("coal-bypass", start))
            await _api(
                port,
                "coal",
                f"/bypass-approvals/{made['approval']['id']}/revoke",
                {"note": f"作废 {n}"},
            )
        await _api(port, "coal", "/bypass-approvals", _approval("coal-bypass", start))
        async with _page(port, "coal") as coal:
            first = await _listed(coal)
            assert [r["id"] for r in first] == [str(i) for i in range(60, 10, -1)]
            assert await coal.js(f"{q('#bp-older')}.hidden") is False
            await coal.js(f"{q('#bp-older')}.click()")
            await coal.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 60")
            rows = await _listed(coal)
            assert [r["id"] for r in rows] == [str(i) for i in range(60, 0, -1)]
            assert await coal.js(f"{q('#bp-older')}.hidden") is True
            # those covering now
            await _choose(coal, "#bp-active", "true")
            await coal.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 20")
            assert {r["cover"] for r in await _listed(coal)} == {"covers"}
            # the 21st not ended: 409, in words, the flag named
            await coal.js(f"{q('#bp-record')}.click()")
            await coal.wait_for(f"{q(FORM)} !== null")
            assert await coal.js(f"{q(f'{FORM} [name=sensor]')}.value") == "coal-bypass"
            await _fill(coal, FORM, approved_by="李工", reason="再次检修", measures="专人监护")
            said = await _submit(coal, FORM)
            assert said.startswith(
                "The flag has 20 approvals not ended already: revoke one no longer meant, or "
                "record this one when another has ended\nAt fault: Bypass flag\n"
                "Refused by the hub (409): sensor 'coal-bypass' has 20 approvals"
            ), said
            assert await coal.js(f"{q(f'{FORM} [name=sensor]')}.ariaInvalid") == "true"
            # another language: the form anew in it, with what was typed
            await coal.js(f"{q('#lang')}.click()")
            await coal.wait_for(f"{q(f'{FORM} .bulk-ask')}?.textContent === '登记旁路审批'")
            assert await coal.js(f"{q(f'{FORM} [name=reason]')}.value") == "再次检修"
            assert await coal.js(f"{q(f'{FORM} .bp-field-measures span')}.textContent") == (
                "临时安全措施（必填）"
            )
            await _revoke_deep(coal)
            await _unanswered(coal)

        # a viewer reads the list, and records and revokes nothing
        async with _page(port, "viewer") as viewer:
            assert len(await _listed(viewer)) == 50
            assert await viewer.js(f"{q('#bp-record')}.hidden") is True
            assert await viewer.js(f"{q('.bp-revoke')}") is None


async def _revoke_deep(coal: Browser) -> None:
    """In the whole list (60 rows, on a laptop's 1366 px), the 5th approval revoked: its row
    redrawn in place (the rows read kept, the list's scroll), the focus on its status."""
    await coal.call(
        "Emulation.setDeviceMetricsOverride",
        width=1366,
        height=768,
        deviceScaleFactor=1,
        mobile=False,
    )
    await _choose(coal, "#bp-active", "")
    await coal.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 50")
    await coal.js(f"{q('#bp-older')}.click()")
    await coal.wait_for("document.querySelectorAll('#bp-list tr.bp-row').length === 60")
    # 撤销 on one line (a line box), not a character a line
    lines = await coal.js(
        f"(() => {{ const r = document.createRange();"
        f" r.selectNodeContents({_row(5, ' .bp-revoke')}); return r.getClientRects().length; }})()"
    )
    assert lines == 1, lines
    await coal.js(f"{_row(5)}.scrollIntoView(); {_row(5, ' .bp-revoke')}.click(); 1")
    revoke = "#bp-list form[data-form=revoke]"
    await coal.wait_for(f"{q(revoke)} !== null")
    scrolled = await coal.js(f"{q('.bp-listbox')}.scrollTop")
    assert scrolled > 1000, scrolled
    await _fill(coal, revoke, note="检修提前结束")
    assert await _submit(coal, revoke) == "已撤销旁路审批 #5"
    assert await coal.js(f"{_row(5)}.dataset.cover") == "revoked_st"
    assert [r["id"] for r in await _listed(coal)] == [str(i) for i in range(60, 0, -1)]
    assert abs(await coal.js(f"{q('.bp-listbox')}.scrollTop") - scrolled) < 2
    assert await coal.js(f"{_row(5)}.contains(document.activeElement)") is True
    assert await coal.js("document.activeElement.classList.contains('bp-cover')") is True
    note = "tr.bp-extra[data-for='5'] .bp-msg"
    assert await coal.js(f"{q(note)}.innerText") == "已撤销旁路审批 #5"
    # a revocation the hub did, its answer lost: said unsure, its row read again (revoked)
    await coal.js(WRITES)
    await coal.js(f"window.__mode = 'lose'; {_row(6, ' .bp-revoke')}.click(); 1")
    await coal.wait_for(f"{q(revoke)} !== null")
    await _fill(coal, revoke, note="核对")
    said = await _submit(coal, revoke)
    assert said == (
        "未收到平台答复（Failed to fetch）：不确定是否已撤销，请核对此条的状态（已重新读取）"
    ), said
    await coal.wait_for(f"{_row(6)}.dataset.cover === 'revoked_st' && !{q(revoke)}")
    await coal.js("window.__mode = ''; 1")
    await coal.call("Emulation.clearDeviceMetricsOverride")


async def _unanswered(coal: Browser) -> None:
    """A record the hub did but whose answer was lost: said unsure, the list read again (the
    approval in it); a record the hub is slow to answer: its form kept (neither Cancel nor
    Escape, nor another form) until the answer."""
    reason, cancel = q(f"{FORM} [name=reason]"), q(f"{FORM} button.cancel")
    await coal.js(WRITES)
    await coal.js("window.__mode = 'lose'; 1")
    said = await _submit(coal, FORM)
    assert said == (
        "未收到平台答复（Failed to fetch）：不确定是否已登记，请刷新核对（列表已重新读取），"
        "勿重复登记"
    ), said
    await coal.wait_for(f"{_row(61)} !== null")
    assert await coal.js(f"{reason}.value") == "再次检修"  # kept
    # slow: recorded once let through
    await coal.js("window.__mode = 'hold'; 1")
    await coal.js(f"{q('.bp-msg')}?.remove(); {q(f'{FORM} button[type=submit]')}.click(); 1")
    await coal.wait_for("typeof window.__release === 'function'")
    assert await coal.js(f"{cancel}.disabled") is True
    assert await coal.js(f"{q('#bp-record')}.disabled") is True
    await coal.js(
        f"{reason}.dispatchEvent(new KeyboardEvent('keydown', {{ key: 'Escape', bubbles: true }}));"
        f" {cancel}.click(); {q('#bp-record')}.click(); 1"
    )
    assert await coal.js(f"{reason}?.value") == "再次检修"
    await coal.js("window.__mode = ''; window.__release(); 1")
    said = str(await coal.wait_for(f"{q('.bp-msg:not([hidden])')}?.innerText"))
    assert said == "已登记旁路审批 #62", said
    assert await coal.js(f"{q(FORM)}") is None
    assert await coal.js(f"{q('#bp-record')}.disabled") is False
