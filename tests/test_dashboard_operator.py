"""What a night-shift operator met on the dashboard, in headless Chromium against the scripted
stand-in for the hub (test_dashboard_client.FakeHub): a blank reason or note said in the page's
language before it is sent, and a hub's 422 said as a sentence, not pydantic's words; a shelve of
the operator's own length; the disposal's end 办结 throughout; the map's vehicles in their
highest tier's colour, a click opening the vehicle's alarm; the trend's levels in their tiers'
colours with their values and a y-axis; the handover's repeated alarms of a point together, its
enterprises and sites by name, and the operator's remarks printed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request
from test_dashboard_client import (
    QUICK_TIMERS,
    ZH,
    FakeHub,
    Key,
    handover_answer,
    now_ms,
    page,
    q,
    reading,
    row,
    sensor,
    serving,
    shaped,
    tile,
)

from api.alarmactions import ShelveIn, TextIn
from api.problems import install_problem_handlers


class ActingHub(FakeHub):
    """The stand-in with the hub's shelve and comment: their bodies validated by the hub's own
    models and refused as the hub refuses them (422 problem details, `errors` per field)."""

    sent: list[tuple[str, Any]]

    def app(self) -> FastAPI:
        app = super().app()
        install_problem_handlers(app)
        self.sent = []

        def found(request: Request, aid: int) -> Any:
            return next(a for a in self.keys["k"].alarms if a["id"] == aid)

        @app.post("/api/v1/alarms/{aid}/shelve")
        async def shelve(request: Request, aid: int, body: ShelveIn) -> Any:
            self.sent.append(("shelve", body.model_dump()))
            a = found(request, aid)
            a["shelved_until"] = now_ms() + (body.duration_s or 0) * 1000
            return a

        @app.post("/api/v1/alarms/{aid}/comment")
        async def comment(request: Request, aid: int, body: TextIn) -> Any:
            self.sent.append(("comment", body.model_dump()))
            return found(request, aid)

        return app


FORM = "tr.extra[data-for='1'] form[data-form='{verb}']"


async def _open(browser: Any, verb: str) -> str:
    await browser.wait_for(f"!!{row(1, f'.act-{verb}')}", 5)
    await browser.js(f"{row(1, f'.act-{verb}')}.click()")
    form = q(FORM.format(verb=verb))
    await browser.wait_for(f"!!{form}", 5)
    return form


async def _submit(browser: Any, form: str, values: dict[str, str]) -> str:
    """Fill `form`, submit it and answer the row's message once shown."""
    msg = row(1, ".msg")
    await browser.js(
        f"(() => {{ const f = {form}; const v = {json.dumps(values)};"
        " for (const [k, x] of Object.entries(v)) { f.elements[k].value = x;"
        " f.elements[k].dispatchEvent(new Event('change')); } })()"
    )
    await browser.js(f"{form}.querySelector('.submit').click()")
    await browser.wait_for(f"!!{msg} && !{msg}.hidden", 5)
    return str(await browser.js(f"{msg}.textContent"))


async def test_a_blank_reason_or_note_is_said_in_the_pages_language_and_a_422_as_a_sentence():
    """A shelve with a reason of only spaces was sent, and its refusal shown in pydantic's
    English ("422 reason: Value error, a note is required ...") on a Chinese page."""
    hub = ActingHub(keys={"k": Key(sensors=[sensor("a")], alarms=[shaped(1, "a")])})
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        form = await _open(browser, "shelve")
        said = await _submit(browser, form, {"reason": "   "})
        assert said == "请填写搁置原因：不能只有空格或不可见字符", said
        said = await _submit(browser, form, {"reason": "\u200b \u200b"})  # zero-width spaces
        assert said == "请填写搁置原因：不能只有空格或不可见字符", said
        assert hub.sent == []
        # what the page cannot judge the hub refuses: said as the field and what is wrong
        said = await _submit(browser, form, {"reason": "\u0007检修"})
        assert said == "422 原因：含有控制字符，请删除后再提交", said
        assert "Value error" not in said and hub.sent == []
        await browser.js(f"{form}.querySelector('.cancel').click()")
        form = await _open(browser, "comment")
        said = await _submit(browser, form, {"note": "  "})
        assert said == "请填写说明：不能只有空格或不可见字符", said
        form = await _open(browser, "verify")
        said = await _submit(browser, form, {"note": " \u200b"})
        assert said == "请填写说明：不能只有空格或不可见字符", said
        assert hub.sent == []
        # in English the same, in English
        await browser.js(f"{q('#lang')}.click()")
        form = await _open(browser, "comment")
        said = await _submit(browser, form, {"note": "\u0007x"})
        assert said == "422 note: holds a control character: take it out", said


async def test_a_shelve_lasts_the_minutes_the_operator_gives_within_the_hubs_7_days():
    """Shelve offered 1, 8 or 24 h: a 90-minute job was shelved for 8."""
    hub = ActingHub(keys={"k": Key(sensors=[sensor("a")], alarms=[shaped(1, "a")])})
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        form = await _open(browser, "shelve")
        options = await browser.js(
            f"[...{form}.elements.duration.options].map((o) => [o.value, o.textContent])"
        )
        assert options[-1] == ["custom", "自定义（分钟）"], options
        assert await browser.js(f"{form}.elements.minutes.closest('label').hidden")
        await browser.js(
            f"(() => {{ const d = {form}.elements.duration; d.value = 'custom';"
            " d.dispatchEvent(new Event('change')); })()"
        )
        assert not await browser.js(f"{form}.elements.minutes.closest('label').hidden")
        for bad in ("20000", "0", "1.5", ""):
            said = await _submit(browser, form, {"reason": "检修", "minutes": bad})
            assert said == "搁置时长须在 1 至 10080 分钟之间（最多 7 天）", (bad, said)
        assert hub.sent == []
        await browser.js(f"{form}.elements.minutes.value = '90'")
        await browser.js(f"{form}.querySelector('.submit').click()")
        for _ in range(100):
            if hub.sent:
                break
            await asyncio.sleep(0.05)
        assert hub.sent == [("shelve", {"reason": "检修", "duration_s": 5400, "until": None})]


async def test_the_disposals_end_is_banjie_and_the_centre_the_monitoring_centre():
    """The disposal's end read 已关闭 / 关闭 on the badge and button (the panels' close button's
    word) but 办结 in the journal; and the strings said 监控中心 where the page says 监测中心."""
    done = shaped(1, "a", state="cleared", isa_state="normal", acked=True, disposal="disposed")
    closed = shaped(2, "b", state="cleared", isa_state="normal", acked=True, disposal="closed")
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=[done, closed])})
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.js(f"{q('[data-filter=all]')}?.click()")
        await browser.wait_for(f"!!{row(1, '.act-close')}", 5)
        assert await browser.js(f"{row(1, '.act-close')}.textContent") == "办结"
        await browser.wait_for(f"!!{row(2)}", 5)
        assert "已办结" in await browser.js(f"{row(2)}.innerText")
        words = await browser.js(
            "(async () => JSON.stringify((await import('/static/alarmstrings.js')).STRINGS.zh))()"
        )
        assert "监控中心" not in words and "已关闭" not in words and "关闭" not in words


VEHICLES = [
    {"id": v, "tenant": "t", "plate": p, "vehicle_class": "hazmat", "speed_sensor": f"{v}.speed"}
    for v, p in (("v1", "苏A·1"), ("v2", "苏A·2"), ("v3", "苏A·3"))
]


def _vehicle_alarm(aid: int, vehicle: str, tier: str, started: int) -> dict[str, Any]:
    return {
        **shaped(aid, f"{vehicle}.speed", tier),
        "site": "vehicles",
        "device": vehicle,
        "device_name": vehicle,
        "started_ts": started,
    }


def _fleet_hub(now: int) -> FakeHub:
    """The stand-in with the three vehicles, each last seen an hour ago a little apart."""
    hub = FakeHub(keys={"k": Key()})
    hub.vehicles = [
        {**v, "last_position": {"ts": now - 3_600_000, "lat": 31.6 + k * 0.01, "lon": 120.3,
                                "speed_kmh": 0.0, "heading_deg": 0.0}}
        for k, v in enumerate(VEHICLES)
    ]  # fmt: skip
    return hub


async def test_the_map_colours_a_vehicle_by_its_highest_active_tier_and_opens_its_alarm():
    """Every vehicle with an active alarm was painted the same red, a blue 定位漂移 too."""
    now = now_ms()
    hub = _fleet_hub(now)
    hub.keys["k"].alarms = [
        _vehicle_alarm(1, "v1", "blue", now - 50_000),  # a drift alone: blue
        _vehicle_alarm(2, "v2", "blue", now - 40_000),
        _vehicle_alarm(3, "v2", "orange", now - 30_000),  # v2's highest, and its newest
        _vehicle_alarm(4, "v2", "yellow", now - 60_000),
    ]
    # (the map is drawn again every 10 s, here quicker: its first may come before the alarms)
    async with serving(hub), page(hub, "k", script=QUICK_TIMERS) as browser:
        canvas = q("#map")
        await browser.wait_for(f"{canvas}.dataset.vehicles?.includes('orange')", 15)
        dots = {d["id"]: d for d in json.loads(await browser.js(f"{canvas}.dataset.vehicles"))}
        assert {k: d["tier"] for k, d in dots.items()} == {"v1": "blue", "v2": "orange", "v3": ""}
        # the pixel under v1's ring is the list's blue, v2's orange
        for vid, rgb in (("v1", [47, 111, 222]), ("v2", [240, 125, 0])):
            d = dots[vid]
            px = await browser.js(
                f"[...{canvas}.getContext('2d').getImageData({d['x']} - 6, {d['y']}, 1, 1).data]"
            )
            assert px[:3] == rgb, (vid, px)
        # a click on v2 opens its newest active alarm, #3
        at = await browser.js(
            f"(() => {{ const c = {canvas}, r = c.getBoundingClientRect();"
            f" c.scrollIntoView(); const s = c.getBoundingClientRect();"
            f" return [s.left + {dots['v2']['x']} * s.width / c.width,"
            f" s.top + {dots['v2']['y']} * s.height / c.height]; }})()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await browser.call(
                "Input.dispatchMouseEvent", type=kind, x=at[0], y=at[1], button="left",
                clickCount=1,
            )  # fmt: skip
        await browser.wait_for(f"{row(3)}.classList.contains('expanded')", 5)
        assert not await browser.js(f"{row(2)}.classList.contains('expanded')")


async def test_the_trend_draws_each_level_in_its_tiers_colour_with_its_value_and_an_axis():
    """The levels were identical red dashed lines without values, the y-axis two numbers."""
    levels = [
        {"name": n, "tier": tier, "above": v, "below": None, "recover": v - 0.1, "action": ""}
        for n, tier, v in (("prewarn", "yellow", 0.8), ("alarm", "orange", 1.0),
                           ("power_cut", "red", 1.5))
    ]  # fmt: skip
    now = now_ms()
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a", levels=levels)],
                                 latest=[reading("a", now, 0.4)])})  # fmt: skip
    hub.history_rows = [
        {"ts": now - (60 - k) * 10_000, "min": 0.3 + 0.005 * k, "max": 0.35 + 0.005 * k}
        for k in range(60)
    ]
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{tile('a')}", 5)
        await browser.js(f"{tile('a')}.click()")
        trend = q("#trend")
        await browser.wait_for(f"!!{trend}.dataset.levels", 10)
        marks = json.loads(await browser.js(f"{trend}.dataset.levels"))
        assert [(m["value"], m["tier"]) for m in marks] == [
            (0.8, "yellow"),
            (1.0, "orange"),
            (1.5, "red"),
        ]
        assert len({m["colour"] for m in marks}) == 3
        ticks = json.loads(await browser.js(f"{trend}.dataset.ticks"))
        assert len(ticks) >= 3 and "1" in ticks, ticks


async def test_the_handover_groups_a_points_repeats_names_places_and_prints_the_remarks():
    """One chattering point's 150 alarms were listed one by one; the chattering table's kind
    read "above" and the enterprise and site their ids; the operator had nowhere to write."""
    now = now_ms()
    shift = handover_answer(now)
    many = [
        {**shaped(100 + k, "a", "yellow"), "started_ts": now - (150 - k) * 60_000}
        for k in range(150)
    ]
    many[40] = {**many[40], "tier": "red", "peak_tier": "red"}
    other = {**shaped(9, "b"), "location": "回风巷"}
    shift["active_unack"] = {"count": 151, "truncated": False, "alarms": [*many, other]}
    s_a = {**sensor("a"), "tenant_name": "华兴化工", "site_name": "液氯罐区"}
    hub = FakeHub(keys={"k": Key(sensors=[s_a, sensor("b")], tenants=None)}, handover=shift)
    section = "(k) => document.querySelector(`#handover-body [data-section=${k}]`)?.innerText"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!({section})('active_unack')", 5)
        rows = await browser.js(
            "[...document.querySelectorAll('#handover-body [data-section=active_unack] tbody tr')]"
            ".map((r) => r.innerText)"
        )
        assert len(rows) == 2, rows
        assert "150 条" in rows[0] and "红色" in rows[0], rows[0]
        chatter = await browser.js(f"({section})('chattering')")
        assert "超上限" in chatter and "above" not in chatter, chatter
        assert "华兴化工 / 液氯罐区" in chatter, chatter
        # the remarks: typed, kept over a redraw, printed as text
        box = q("#handover-remarks")
        await browser.js(
            f"{box}.value = '2 号罐液位计待校准'; {box}.dispatchEvent(new Event('input')); 1"
        )
        await browser.js(f"{q('#handover-refresh')}.click()")
        await asyncio.sleep(0.5)
        assert await browser.js(f"{q('#handover-remarks')}.value") == "2 号罐液位计待校准"
        await browser.call("Emulation.setEmulatedMedia", media="print")
        printed = await browser.js(f"{q('.ho-remarks-print')}.innerText")
        assert printed == "2 号罐液位计待校准"
        assert await browser.js(f"getComputedStyle({box}).display") == "none"
        await browser.call("Emulation.setEmulatedMedia", media="")


async def test_a_vehicles_new_alarm_colours_its_dot_at_once_not_at_the_next_redraw():
    """The map was read every 10 s: a tanker's new red alarm left its dot grey until then."""
    now = now_ms()
    hub = _fleet_hub(now)
    async with serving(hub), page(hub, "k") as browser:
        canvas = q("#map")
        await browser.wait_for(f"!!{canvas}.dataset.vehicles", 10)
        hub.keys["k"].alarms = [_vehicle_alarm(7, "v1", "red", now_ms())]
        await hub.push(
            "alarm",
            {"alarm_id": 7, "event_id": 70, "kind": "raised", "site": "vehicles", "device": "v1"},
        )
        # within 3 s, well before the 10 s redraw
        await browser.wait_for(f"{canvas}.dataset.vehicles.includes('red')", 3)


class CargoHub(FakeHub):
    """The stand-in with `GET /api/v1/vehicles/{id}`: v1 with its driver and waybill as its
    JT/T 809 platform reported them, v2 with none."""

    def app(self) -> FastAPI:
        app = super().app()
        at = now_ms() - 600_000
        said = {"platform": "acme-gps", "gateway": "jt809", "plate": "苏A1", "at": at}
        said["received_at"] = at

        @app.get("/api/v1/vehicles/{vid}")
        async def vehicle(vid: str) -> Any:
            v = next(v for v in VEHICLES if v["id"] == vid)
            if vid != "v1":
                return {**v, "driver": None, "waybill": None, "registration": None}
            driver = {**said, "name": "张三", "id_number": "320102199001011234"}
            driver |= {"licence": "3201000000001", "org": "南京市交通运输局", "valid_until": None}
            text = "运单号 YD001; UN1203 汽油, 3类, 18.5 t; 南京 -> 苏州"
            waybill = {**said, "text": text, "truncated": False, "chars": len(text)}
            return {**v, "driver": driver, "waybill": waybill, "registration": None}

        return app


async def test_a_vehicles_alarm_says_who_drives_it_and_what_it_carries():
    """At a tanker's alarm the operator must know at once what it carries (UN number, goods,
    quantity) and who drives it: the driver and e-waybill its platform reported (JT/T 809)."""
    hub = CargoHub(keys={"k": Key()})
    hub.keys["k"].alarms = [
        _vehicle_alarm(1, "v1", "red", now_ms() - 30_000),
        _vehicle_alarm(2, "v2", "orange", now_ms() - 20_000),
    ]
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        for aid in (1, 2):
            await browser.wait_for(f"!!{row(aid)}", 5)
            await browser.js(f"{row(aid)}.click()")
        cargo = "(v) => document.querySelector(`.cargo[data-vehicle='${v}']`)?.textContent"
        await browser.wait_for(f"({cargo})('v1')?.includes('UN1203')", 5)
        got = await browser.js(f"({cargo})('v1')")
        assert "张三" in got and "3201000000001" in got and "南京 -> 苏州" in got, got
        await browser.wait_for(f"({cargo})('v2')?.includes('未上报')", 5)
        # read once a minute per vehicle, not at every redraw
        assert hub.count("/api/v1/vehicles/v1") == 1
