"""The dashboard's hidden-danger page (隐患排查治理, api/static/hazards.js) in headless Chromium
against a real hub: an enterprise's safety manager reports an item on the page, the centre's
supervisor grades it with a deadline, and the enterprise sees it graded; a step the hub refuses
shows the hub's reason; the audit says who did what, when; one enterprise never sees another's
items; an alarm of the list is reported as a hidden danger (`from_alarm`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from cdp import Browser
from dashboard_page import signed_in
from test_dashboard_browser import _publish_methane

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.config import ApiKeySpec

from e2e_helpers import mine_registry, running_hub
from services import free_port

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CST = timezone(timedelta(hours=8))
ADMIN, COAL, CHEM, VIEWER = "k-admin-1", "k-coal-safety", "k-chem-safety", "k-viewer-1"
# a second enterprise, with a site of its own
SOUTH = """  - id: south-chem
    name: 南方化工
    sites:
      - {id: tank-farm, name: 罐区, kind: chemical}
"""
pytestmark = pytest.mark.slow


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def _hub(port: int, broker: int, data: Path) -> Hub:
    return Hub(
        mine_registry(1502, 1.0, SOUTH),
        HubSettings(data_dir=data, broker_port=broker, api_port=port),
        extra_keys=[
            ApiKeySpec(name="root", sha256=hash_key(ADMIN), role="admin"),
            ApiKeySpec(
                name="coal-safety",
                sha256=hash_key(COAL),
                role="enterprise",
                tenants=("north-coal",),
            ),
            ApiKeySpec(
                name="watch", sha256=hash_key(VIEWER), role="viewer", tenants=("north-coal",)
            ),
            ApiKeySpec(
                name="chem-safety",
                sha256=hash_key(CHEM),
                role="enterprise",
                tenants=("south-chem",),
            ),
        ],
    )


@asynccontextmanager
async def _page(port: int, key: str, lang: str = "en") -> AsyncIterator[Browser]:
    """A browser logged in with `key`, its hidden-danger page open and read, in `lang`."""
    async with signed_in(port, key, lang) as browser:
        await browser.js(f"{q('#hazards-open')}.click()")
        await _listed(browser)
        yield browser


async def _listed(browser: Browser) -> list[dict[str, str]]:
    """The rows of the list once read: id, status, grade, deadline cell."""
    await browser.wait_for(
        f"!{q('#hz-empty')}.hidden || document.querySelectorAll('#hz-list tr.hz-row').length"
    )
    rows = await browser.js(
        """[...document.querySelectorAll('#hz-list tr.hz-row')].map((tr) => ({
             id: tr.dataset.hazard, status: tr.querySelector('.hz-status').dataset.status,
             grade: tr.querySelector('.hz-grade').textContent,
             deadline: tr.querySelector('.hz-deadline').textContent,
             text: tr.innerText}))"""
    )
    return list(rows)


async def _fill(browser: Browser, form: str, **values: str) -> None:
    for name, value in values.items():
        await browser.js(
            f"{q(f'{form} [name={name}]')}.value = {json.dumps(value)};"
            f"{q(f'{form} [name={name}]')}.dispatchEvent(new Event('change')); 1"
        )


async def _open_item(browser: Browser, hazard_id: str) -> None:
    await browser.js(f"{q(f'#hz-list tr[data-hazard={json.dumps(hazard_id)}] .hz-open')}.click()")
    await browser.wait_for(
        f"{q('#hz-detail h3')}?.textContent.startsWith('#{hazard_id} ')"
        " && document.activeElement === " + q("#hz-detail h3")
    )


async def _press(browser: Browser, key: str, code: int) -> None:
    """A key pressed on the keyboard, to the element with the focus."""
    text = {"Enter": "\r"}.get(key, "")
    await browser.call(
        "Input.dispatchKeyEvent",
        type="keyDown",
        key=key,
        code=key,
        windowsVirtualKeyCode=code,
        text=text,
    )
    await browser.call(
        "Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code
    )


async def _step(browser: Browser, step: str, **values: str) -> None:
    """Open `step`'s form on the item shown, fill it and submit it."""
    await browser.js(f"{q(f'#hz-detail .hz-act[data-step={json.dumps(step)}]')}.click()")
    form = f"#hz-detail form[data-step={json.dumps(step)}]"
    await browser.wait_for(f"{q(form)} !== null")
    await _fill(browser, form, **values)
    await browser.js(f"{q(f'{form} button[type=submit]')}.click()")


async def _audit(browser: Browser) -> list[list[str]]:
    rows = await browser.js(
        """[...document.querySelectorAll('#hz-detail .hz-audit tr[data-action]')]
             .map((tr) => [...tr.children].map((td) => td.textContent))"""
    )
    return [list(r) for r in rows]


def _day(days: int) -> tuple[str, str]:
    """A date `days` ahead in China, as the date input takes it, and its deadline as shown:
    the end of that day (24:00 CST), not the next day's 00:00."""
    day = datetime.now(CST).date() + timedelta(days=days)
    return day.isoformat(), f"{day.isoformat()} 24:00"


async def test_an_enterprise_reports_the_centre_grades_and_the_enterprise_sees_it_graded(
    mosquitto, tmp_path
):
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        async with _page(port, COAL) as coal:
            assert await _listed(coal) == []
            # an enterprise's own key: nothing to choose, its own enterprise
            assert await coal.js(f"{q('#hz-tenant-wrap')}.hidden") is True
            await coal.js(f"{q('#hz-report')}.click()")
            form = "#hz-form form[data-step=report]"
            await coal.wait_for(f"{q(form)} !== null && {q(f'{form} [name=site]')}.options.length")
            assert await coal.js(f"{q(f'{form} [name=site]')}.value") == "face-1301"
            # what it says is shown as text, never as markup
            said = "局部通风机单电源 <img src=x>"
            await _fill(coal, form, description=said, category="通风", location="1301 回风巷")
            await coal.js(f"{q(f'{form} button[type=submit]')}.click()")
            await coal.wait_for(f"{q('#hz-detail h3')}?.textContent === '#1 ' + {json.dumps(said)}")
            assert await coal.js("document.querySelectorAll('#hz-detail img').length") == 0
            assert await coal.js(f"{q('#hz-detail [data-fact=hz_f_status]')}.textContent") == (
                "reported"
            )
            (row,) = await _listed(coal)
            assert (row["id"], row["status"], row["grade"]) == (
                "1",
                "reported",
                "general (assessed)",
            )
            await coal.screenshot(SHOTS / "hazards-01-reported.png")

        # the centre sees every enterprise's items, chooses one, grades it with a deadline
        day, shown = _day(15)
        async with _page(port, ADMIN) as centre:
            assert await centre.js(f"{q('#hz-tenant-wrap')}.hidden") is False
            await centre.js(
                f"{q('#hz-tenant')}.value = 'north-coal';"
                f"{q('#hz-tenant')}.dispatchEvent(new Event('change')); 1"
            )
            await centre.wait_for(f"{q('#hz-list tr.hz-row')}?.innerText.includes('北方煤业')")
            # by the keyboard: the item's number is a button, Enter opens its detail
            opener = _row("1", " .hz-open")
            await centre.js(f"{opener}.focus()")
            await _press(centre, "Enter", 13)
            await centre.wait_for(f"document.activeElement === {q('#hz-detail h3')}")
            steps = await centre.js(
                "[...document.querySelectorAll('#hz-detail .hz-act')].map((b) => b.dataset.step)"
            )
            assert steps == ["grade", "deadline", "comment"]  # the centre's, from `reported`
            await _step(
                centre, "grade", grade="major", deadline=day, comment="风机单电源, 定为重大"
            )
            await centre.wait_for(
                f"{q('#hz-detail [data-fact=hz_f_status]')}.textContent === 'graded'"
            )
            assert await centre.js(f"{q('#hz-detail [data-fact=hz_f_deadline]')}.textContent") == (
                shown
            )
            await centre.screenshot(SHOTS / "hazards-02-graded.png")

        async with _page(port, COAL) as coal:
            (row,) = await _listed(coal)
            assert (row["status"], row["grade"], row["deadline"]) == ("graded", "major", shown)
            await _open_item(coal, "1")
            # the audit: who, when, what, from the report on
            audit = await _audit(coal)
            assert [(r[1], r[2], r[3], r[4]) for r in audit] == [
                ("Report", "reported", "coal-safety", "enterprise"),
                ("Grade", "reported → graded", "root", "centre"),
            ]
            assert audit[1][5] == "风机单电源, 定为重大"
            assert "Grade: major" in audit[1][6] and f"Deadline: {shown}" in audit[1][6]
            today = datetime.now(CST).date().isoformat()
            assert audit[0][0].startswith(today) and audit[1][0].startswith(today)
            # a step the hub refuses: its reason, as the hub says it
            await _step(coal, "start")
            refusal = await coal.wait_for(
                f"!{q('#hz-detail .hz-msg')}.hidden && {q('#hz-detail .hz-why')}.textContent"
            )
            assert refusal.startswith("Refused by the hub (422): item 1 cannot start"), refusal
            assert "six elements" in refusal and "responsible_person" in refusal
            # above the hub's words, what is missing by the form's labels
            lead = await coal.js(f"{q('#hz-detail .hz-missing')}.textContent")
            assert lead.startswith("Missing: Person responsible, Measures, Objectives and tasks")
            assert lead.endswith("Production stop"), lead
            assert await coal.js(f"{q('#hz-detail .hz-msg')}.getAttribute('role')") == "alert"
            assert await coal.js(f"{q('#hz-detail form[data-step=start]')} !== null")
            assert len(await _audit(coal)) == 2  # nothing taken
            # Escape leaves the form, the focus back on its step's button
            await coal.js(f"{q('#hz-detail form[data-step=start] textarea')}.focus()")
            await _press(coal, "Escape", 27)
            await coal.wait_for(f"{q('#hz-detail form')} === null")
            assert await coal.js("document.activeElement.dataset.step") == "start"
            await coal.screenshot(SHOTS / "hazards-03-refused.png")

        # another enterprise sees none of it
        async with _page(port, CHEM) as chem:
            assert await _listed(chem) == []
            assert await chem.js(f"!{q('#hz-empty')}.hidden")


async def test_an_alarm_of_the_list_is_reported_as_a_hidden_danger(mosquitto, tmp_path):
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)), _page(port, COAL) as coal:
        await _publish_methane(mosquitto.port, time.time_ns() // 1_000_000 - 3000, (0.4, 1.2, 1.6))
        alarm = await coal.wait_for(f"{q('#alarms tbody tr.alarm')}?.dataset.alarm", 20)
        await coal.js(f"{q('#alarms tbody tr.alarm')}.click()")  # its detail
        button = f"tr.extra[data-for='{alarm}'] .hz-from-alarm"
        await coal.wait_for(f"{q(button)} !== null")
        await coal.js(f"{q(button)}.click()")
        form = "#hz-form form[data-step=report]"
        await coal.wait_for(f"{q(form)} !== null")
        asked = await coal.js(f"{q(f'{form} .bulk-ask')}.textContent")
        assert f"alarm #{alarm} (ch4-t1" in asked and "北方煤业" in asked
        assert await coal.js(f"{q(f'{form} [name=site]')} === null")  # the alarm's site
        await _fill(coal, form, description="T1 甲烷频繁超限, 怀疑局部通风不足")
        await coal.js(f"{q(f'{form} button[type=submit]')}.click()")
        await coal.wait_for(f"{q('#hz-detail h3')}?.textContent.startsWith('#1 ')")
        facts = await coal.js(
            "Object.fromEntries([...document.querySelectorAll('#hz-detail dd[data-fact]')]"
            ".map((d) => [d.dataset.fact, d.textContent]))"
        )
        assert facts["hz_f_source"] == "monitoring alarm"
        assert facts["hz_f_alarm_ids"] == f"#{alarm}"
        assert facts["hz_f_sensor_ids"] == "ch4-t1"
        assert facts["hz_f_site"] == "1301 综采工作面 (face-1301)"


PLAN = {
    "plan_objectives": "恢复局部通风机双电源",
    "plan_methods": "加装备用风机及双电源自动切换装置",
    "plan_funds_materials": "12 万元; 风机 1 台",
    "plan_responsible": "机电科 张工",
    "plan_schedule": "15 日内完成并联调",
    "plan_safety_emergency": "施工期间停止该工作面作业, 执行停风撤人预案",
}


async def _shown_status(browser: Browser, status: str) -> None:
    await browser.wait_for(
        f"{q('#hz-detail [data-fact=hz_f_status] span')}?.className === 'hz-st-{status}'"
    )


async def test_a_major_item_goes_through_the_ledger_on_the_page_in_chinese(mosquitto, tmp_path):
    """The plan's six elements, the start, the review request, a rejection, a new request, the
    acceptance and the closing (销号), each clicked by its party, in Chinese; a viewer reads."""
    port = free_port()
    day, _ = _day(20)
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        async with _page(port, COAL, "zh") as coal:
            await coal.js(f"{q('#hz-report')}.click()")
            form = "#hz-form form[data-step=report]"
            await coal.wait_for(f"{q(form)} !== null && {q(f'{form} [name=site]')}.options.length")
            labels = await coal.js(
                f"[...{q(form)}.querySelectorAll('.hz-label')].map((l) => l.textContent)"
            )
            assert labels[:3] == ["企业", "场所", "隐患描述（必填）"]
            await _fill(coal, form, description="局部通风机单电源", grade="major")
            await coal.js(f"{q(f'{form} button[type=submit]')}.click()")
            await _shown_status(coal, "reported")
            assert await coal.js(f"{q('#hz-detail .hz-msg')}.textContent") == "已完成：上报 #1"
        async with _page(port, ADMIN, "zh") as centre:
            await _open_item(centre, "1")
            await _step(centre, "grade", grade="major", deadline=day)
            await _shown_status(centre, "graded")
        async with _page(port, COAL, "zh") as coal:
            await _open_item(coal, "1")
            steps = await coal.js(
                "[...document.querySelectorAll('#hz-detail .hz-act')].map((b) => b.textContent)"
            )
            assert steps == ["填写整改方案", "开始整改", "备注"]
            # the plan's form, half written, follows the page's language with what was typed
            await coal.js(f"{q('#hz-detail .hz-act[data-step=plan]')}.click()")
            form = "#hz-detail form[data-step=plan]"
            await coal.wait_for(f"{q(form)} !== null")
            await _fill(coal, form, responsible_person="机电科 张工", production_stop="partial")
            first = f"{q(f'{form} .hz-label')}.textContent"
            assert await coal.js(first) == "整改责任人"
            await coal.js(f"{q('#lang')}.click()")
            await coal.wait_for(f"{first} === 'Person responsible'")
            assert await coal.js(f"{q(f'{form} [name=responsible_person]')}.value") == "机电科 张工"
            assert await coal.js(f"{q(f'{form} [name=production_stop]')}.value") == "partial"
            await coal.js(f"{q('#lang')}.click()")
            await coal.wait_for(f"{first} === '整改责任人'")
            await _fill(coal, form, measures="加装备用风机", funds_yuan="120000", **PLAN)
            await coal.js(f"{q(f'{form} button[type=submit]')}.click()")
            await coal.wait_for(f"{q('#hz-detail .hz-plan-facts')} !== null")
            plan = await coal.js(f"{q('#hz-detail .hz-plan-facts')}.innerText")
            assert "治理的目标和任务" in plan and "执行停风撤人预案" in plan
            await _step(coal, "start")
            await _shown_status(coal, "rectifying")
            await _step(coal, "request-review", comment="备用风机已装, 切换测试合格")
            await _shown_status(coal, "review_requested")
        async with _page(port, ADMIN, "zh") as centre:
            await _open_item(centre, "1")
            await _step(centre, "reject", comment="缺切换测试记录")
            await _shown_status(centre, "rejected")
        async with _page(port, COAL, "zh") as coal:
            await _open_item(coal, "1")
            await _step(coal, "start", comment="补做切换测试")
            await _shown_status(coal, "rectifying")
            await _step(coal, "request-review", comment="测试记录已补")
            await _shown_status(coal, "review_requested")
        async with _page(port, ADMIN, "zh") as centre:
            await _open_item(centre, "1")
            await _step(centre, "accept", comment="现场验收合格")
            await _shown_status(centre, "accepted")
            await _step(centre, "close", comment="予以销号")
            await _shown_status(centre, "closed")
            audit = await _audit(centre)
            assert [r[1] for r in audit] == [
                "上报", "定级", "填写整改方案", "开始整改", "申请验收", "验收不通过",
                "开始整改", "申请验收", "验收通过", "销号",
            ]  # fmt: skip
            assert audit[5][2:6] == [
                "已申请验收 → 验收未通过",
                "root",
                "监管中心",
                "缺切换测试记录",
            ]
            assert "整改责任人: 机电科 张工" in audit[2][6] and "停产范围: 局部停产" in audit[2][6]
            await centre.screenshot(SHOTS / "hazards-04-closed.png")
        # a viewer reads the item and its audit, and is offered no step
        async with _page(port, VIEWER, "zh") as viewer:
            assert await viewer.js(f"{q('#hz-report')}.hidden") is True
            await _open_item(viewer, "1")
            assert await viewer.js("document.querySelectorAll('#hz-detail .hz-act').length") == 0
            assert len(await _audit(viewer)) == 10


async def _api(port: int, key: str, path: str, body: dict[str, object] | None = None) -> object:
    """A request to the hub's API with `key`: a POST with `body`, else a GET."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
        headers = {"Authorization": f"Bearer {key}"}
        r = await (
            client.post(path, json=body, headers=headers)
            if body is not None
            else client.get(path, headers=headers)
        )
        assert r.status_code < 300, r.text
        return r.json()


def _row(hazard_id: str, inside: str = "") -> str:
    return q(f'#hz-list tr[data-hazard="{hazard_id}"]{inside}')


def _steps(browser: Browser) -> object:
    return browser.js(
        "[...document.querySelectorAll('#hz-detail .hz-act')].map((b) => b.dataset.step)"
    )


async def test_refresh_reads_the_open_item_again_and_the_steps_are_the_hubs(mosquitto, tmp_path):
    """The enterprise has #1 open; the centre grades it elsewhere without a deadline: Refresh
    shows it graded, and no Start (the hub would refuse it); once the centre sets a deadline,
    Refresh offers Start. Its refusal names what is missing by the form's labels, in Chinese,
    above the hub's own words."""
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        report = {"site": "face-1301", "description": "局部通风机单电源"}
        await _api(port, COAL, "/hazards", report)
        async with _page(port, COAL, "zh") as coal:
            await _open_item(coal, "1")
            assert await _steps(coal) == ["plan", "comment"]
            await _api(port, ADMIN, "/hazards/1/grade", {"grade": "general"})
            await coal.js(f"{q('#hz-refresh')}.click()")
            await _shown_status(coal, "graded")
            assert await _steps(coal) == ["plan", "comment"]  # no deadline: no start
            # a hub older than `steps`: the page's own table, from the item's status
            await coal.js(
                "window.__fetch = window.fetch; window.fetch = async (u, i) => {"
                " const r = await window.__fetch(u, i);"
                " if (!String(u).endsWith('/hazards/1')) return r;"
                " const d = await r.json(); delete d.steps;"
                " return new Response(JSON.stringify(d), { status: r.status }); }; 1"
            )
            await coal.js(f"{q('#hz-refresh')}.click()")
            await coal.wait_for(f"{q('#hz-detail .hz-act[data-step=start]')} !== null")
            assert await _steps(coal) == ["plan", "start", "comment"]
            await coal.js("window.fetch = window.__fetch; 1")
            deadline = int((datetime.now(CST) + timedelta(days=10)).timestamp() * 1000)
            await _api(
                port, ADMIN, "/hazards/1/deadline", {"deadline": deadline, "comment": "限期"}
            )
            await coal.js(f"{q('#hz-refresh')}.click()")
            await coal.wait_for(f"{q('#hz-detail [data-fact=hz_f_deadline]')} !== null")
            assert await _steps(coal) == ["plan", "start", "comment"]
            await _step(coal, "start")
            await coal.wait_for(f"!{q('#hz-detail .hz-msg')}.hidden")
            lead = await coal.js(f"{q('#hz-detail .hz-missing')}.textContent")
            assert lead == "缺少：整改责任人、整改措施"
            why = await coal.js(f"{q('#hz-detail .hz-why')}.textContent")
            assert why == (
                "平台拒绝（422）：item 1 cannot start its rectification: "
                "missing responsible_person, measures"
            )


async def test_the_open_page_reads_again_by_itself_and_keeps_an_unchanged_list(mosquitto, tmp_path):
    """The centre's page is open on #1 all day: what the enterprise reports or does meanwhile
    shows without a click, when the page reads itself again (every minute, and at once when its
    tab is shown again: the latter here); an unchanged list is not drawn anew (the row the
    operator looks at stays put), nor is the page read again while it is closed."""
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        await _api(port, COAL, "/hazards", {"site": "face-1301", "description": "局部通风机单电源"})
        async with _page(port, ADMIN, "zh") as centre:
            await _open_item(centre, "1")
            row, row2 = "#hz-list tr[data-hazard='1']", "#hz-list tr[data-hazard='2']"
            await centre.js(f"{q(row)}.__mark = 1; window.__reads = 0;"
                            "window.__f = window.fetch; window.fetch = (u, i) => {"
                            " if (String(u).includes('/api/v1/hazards')) window.__reads++;"
                            " return window.__f(u, i); }; 1")  # fmt: skip
            shown = "document.dispatchEvent(new Event('visibilitychange')); 1"
            await centre.js(shown)  # nothing changed: the rows stay as drawn
            await centre.wait_for("window.__reads >= 2")  # (the list and the item open)
            await asyncio.sleep(0.3)
            assert await centre.js(f"{q(row)}.__mark") == 1
            await _api(port, COAL, "/hazards", {"site": "face-1301", "description": "皮带跑偏"})
            await _api(port, COAL, "/hazards/1/comment", {"comment": "已安排检修"})
            await centre.js(shown)
            await centre.wait_for(f"{q(row2)} !== null")
            assert [r["id"] for r in await _listed(centre)] == ["2", "1"]
            await centre.wait_for(f"{q('#hz-detail')}.innerText.includes('已安排检修')")
            # a step's answer stays over a read that finds the item as the step left it
            await _step(centre, "comment", comment="已电话督促")
            msg = "#hz-detail .hz-msg"
            await centre.wait_for(f"{q(msg)}?.textContent === '已完成：备注 #1'")
            await centre.js(f"window.__reads = 0; {shown}")
            await centre.wait_for("window.__reads >= 2")
            await asyncio.sleep(0.3)
            assert await centre.js(f"{q(msg)}?.textContent") == "已完成：备注 #1"
            # no answer to a step: the hub may have taken it; said so, not as a failed read
            await centre.js(
                "window.fetch = (u, i) => i?.method === 'POST' ? Promise.reject(new TypeError("
                "'Failed to fetch')) : window.__f(u, i); 1"
            )
            await _step(centre, "comment", comment="再次督促")
            await centre.wait_for(f"{q(msg)}?.textContent.startsWith('未收到平台应答')")
            said = await centre.js(f"{q(msg)}.textContent")
            assert "不确定是否已提交" in said and "读取失败" not in said, said
            await centre.js("window.fetch = window.__f; 1")
            # closed, the page reads nothing by itself
            await centre.js(f"{q('#hz-close')}.click(); window.__reads = 0; {shown}")
            await asyncio.sleep(0.5)
            assert await centre.js("window.__reads") == 0


async def test_an_items_overdue_alarm_opens_its_item_from_the_alarm_list(mosquitto, tmp_path):
    """A hidden danger's deadline alarm (hazard_overdue, point hazard:<id>) in the alarm list: its
    detail offers to open its item (not to report it as another), and the item opens (a reviewer
    found the alarm did not lead to its item)."""
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        report = {"site": "face-1301", "description": "主扇备用电源未投用"}
        await _api(port, COAL, "/hazards", report)
        soon = time.time_ns() // 1_000_000 + 1500
        await _api(port, ADMIN, "/hazards/1/grade", {"grade": "general", "deadline": soon})
        await asyncio.sleep(2)
        # a step judges its item at once: past its deadline, the overdue alarm is raised
        await _api(port, COAL, "/hazards/1/comment", {"comment": "整改中"})
        async with _page(port, COAL) as coal:
            row = f"{q('#alarms tbody tr.alarm')}"
            alarm = await coal.wait_for(f"{row}?.dataset.alarm", 20)
            await coal.js(f"{row}.click()")  # its detail
            extra = f"tr.extra[data-for='{alarm}']"
            button = f"{extra} .hz-open-item"
            await coal.wait_for(f"{q(button)} !== null")
            assert await coal.js(f"{q(f'{extra} .hz-from-alarm')} === null")
            assert await coal.js(f"{q(button)}.textContent") == "Open hidden danger #1"
            await coal.js(f"{q(button)}.click()")
            await coal.wait_for(f"{q('#hz-detail h3')}?.textContent.startsWith('#1 ')")
            assert not await coal.js(f"{q('#hazards-panel')}.hidden")


async def test_a_long_list_stays_in_its_box_and_the_item_opens_in_view(mosquitto, tmp_path):
    """300 items: the list scrolls in a box of its own height, the page stays short (the alarm
    list near); the item opened last in the list is seen without scrolling the page, and its
    rows are not drawn anew. The latest item asked for wins over a slower earlier answer, and
    an item that cannot be read says so with none open."""
    port = free_port()
    async with running_hub(_hub(port, mosquitto.port, tmp_path)):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            for n in range(300):
                r = await client.post(
                    "/hazards",
                    json={"site": "face-1301", "description": f"隐患 {n + 1}"},
                    headers={"Authorization": f"Bearer {COAL}"},
                )
                assert r.status_code == 201, r.text
        async with _page(port, ADMIN) as centre:
            assert len(await _listed(centre)) == 300
            # an item that cannot be read, none open: its error is shown
            await centre.js(
                "window.__fetch = window.fetch; window.fetch = (u, i) => "
                "String(u).endsWith('/hazards/300') ? Promise.reject(new TypeError('network down'))"
                " : String(u).endsWith('/hazards/299')"
                " ? new Promise((r) => setTimeout(r, 800)).then(() => window.__fetch(u, i))"
                " : window.__fetch(u, i); 1"
            )
            await centre.js(f"{_row('300', ' .hz-open')}.click()")
            said = await centre.wait_for(
                f"!{q('#hz-detail')}.hidden && {q('#hz-detail .hz-msg')}?.textContent"
            )
            assert said == "could not read it: network down"
            # two quick clicks: the slower answer of the first is dropped
            await centre.js(f"{_row('299', ' .hz-open')}.click()")
            await _open_item(centre, "298")
            await centre.js("new Promise((r) => setTimeout(() => r(1), 1200))")
            head = await centre.js(f"{q('#hz-detail h3')}.textContent")
            assert head.startswith("#298 "), head
            await centre.js("window.fetch = window.__fetch; 1")
            # the list in its box; the page short
            box = await centre.js(
                f"(() => {{ const b = {q('.hz-listbox')};"
                " return [b.clientHeight, b.scrollHeight]; })()"
            )
            assert box[0] <= 650 and box[1] > 3 * box[0], box
            assert await centre.js("document.scrollingElement.scrollHeight") < 2500
            alarms = await centre.js(f"{q('#alarms')}.getBoundingClientRect().top + scrollY")
            assert alarms < 2000, alarms
            # the last row, opened from the bottom of the box: the detail in view, no rebuild
            await centre.js(
                "document.querySelectorAll('#hz-list tr.hz-row').forEach((r) => { r.__was = 1; });"
                f"{q('.hz-listbox')}.scrollTop = 1e6; 1"
            )
            await _open_item(centre, "1")
            rect = await centre.js(
                f"(() => {{ const r = {q('#hz-detail h3')}.getBoundingClientRect();"
                " return [r.top, r.bottom, innerHeight, scrollY]; })()"
            )
            assert rect[0] >= 0 and rect[1] <= rect[2], rect
            assert rect[3] < 1500, rect
            assert await centre.js(
                "[...document.querySelectorAll('#hz-list tr.hz-row')].every((r) => r.__was)"
            )
            assert await centre.js(f"{_row('1')}.classList.contains('on')")
            assert not await centre.js(f"{_row('298')}.classList.contains('on')")
            await centre.screenshot(SHOTS / "hazards-05-long-list.png")
