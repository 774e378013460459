"""Hidden-danger items (隐患排查治理, DOMAIN 6): the state machine as a table (who takes which step
from which status, what a step needs), the items and their append-only audit in the state
database, the API (an enterprise reports, the centre grades, the enterprise plans and rectifies,
the centre reviews and closes; tenant-scoped, strict bodies) and the deadlines' alarms raised on
the dispatcher's tick (an injected clock), once, kept over a restart, cleared by the closing."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_alarms import KEYS, _key, auth
from test_lock_tests import CONFIG, batch, registry

from alerts import hazardrules
from alerts.alarms import AlarmEvent
from alerts.gateways import GatewayChange
from alerts.hazardflow import (
    CENTRE,
    DAY_MS,
    ENTERPRISE,
    HazardConflictError,
    HazardForbiddenError,
    HazardIncompleteError,
    HazardItem,
    HazardPlan,
    advance,
)
from alerts.hazards import HazardFilter, item_events, list_items
from alerts.kinds import kind_name
from alerts.lockalarms import LockTestAlarms
from alerts.statedb import StateDB
from api import hazards as hazard_routes
from api.app import AppContext, create_app
from api.auth import KeyRing
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

T0 = 1_800_000_000_000
HOUR = 3_600_000
PLAN = {
    "objectives": "消除局部通风机单风机单电源隐患",
    "methods": "加装备用风机及双电源自动切换装置",
    "funds_materials": "12 万元; 风机 1 台, 切换开关 1 套",
    "responsible": "机电科 张工",
    "schedule": "30 日内完成并联调",
    "safety_emergency": "施工期间停止该工作面作业, 执行停风撤人预案",
}


# the state machine, as a table ------------------------------------------------------------------
def item(status: str = "reported", grade: str = "general", **kw: Any) -> HazardItem:
    return HazardItem(
        1, "north-coal", "face-1301", "self_check", "ventilation", grade, "风机单电源", "",
        (), (), T0, "张三", "coal", T0, status=status, **kw,
    )  # fmt: skip


READY = {"deadline": T0 + 30 * DAY_MS, "responsible_person": "张工", "measures": "加装备用风机"}
E, C = ENTERPRISE, CENTRE
FORBIDDEN, CONFLICT, INCOMPLETE = HazardForbiddenError, HazardConflictError, HazardIncompleteError
STEPS: list[tuple[HazardItem, str, str, dict[str, Any], str, str | type[Exception]]] = [
    # (item, action, party, changes, comment, status after or the error)
    (item(), "grade", C, {"grade": "major"}, "", "graded"),
    (item(), "grade", E, {"grade": "major"}, "", FORBIDDEN),
    (item(), "grade", C, {}, "", INCOMPLETE),  # the grade is the step's
    (item("accepted"), "grade", C, {"grade": "general"}, "", CONFLICT),
    # the centre re-grades until the acceptance; made major without its plan: back to graded
    (item("rectifying", "major", **READY), "grade", C, {"grade": "general"}, "", "rectifying"),
    (item("review_requested"), "grade", C, {"grade": "general"}, "", "review_requested"),
    (item("rectifying", **READY), "grade", C, {"grade": "major"}, "", "graded"),
    (item("rejected", **READY), "grade", C, {"grade": "major"}, "", "graded"),
    (
        item("rectifying", plan=HazardPlan(**PLAN), production_stop="none", **READY),
        "grade",
        C,
        {"grade": "major"},
        "",
        "rectifying",
    ),
    # moving a deadline already set needs the reason the deadline step needs; setting it not
    (
        item("graded", **READY),
        "grade",
        C,
        {"grade": "major", "deadline": T0 + DAY_MS},
        "",
        INCOMPLETE,
    ),
    (
        item("graded", **READY),
        "grade",
        C,
        {"grade": "major", "deadline": T0 + DAY_MS},
        "延期",
        "graded",
    ),
    (item("graded"), "grade", C, {"grade": "major", "deadline": T0 + DAY_MS}, "", "graded"),
    (item(), "grade", C, {"grade": "major", "measures": "x"}, "", INCOMPLETE),  # not its field
    (item(), "plan", E, {"measures": "加装备用风机"}, "", "reported"),
    (item("rectifying", **READY), "plan", E, {"funds_yuan": 1.0}, "", "rectifying"),
    # from the start on, a plan step cannot empty what the start needed
    (item("rectifying", **READY), "plan", E, {"measures": " "}, "", INCOMPLETE),
    (item("rejected", **READY), "plan", E, {"responsible_person": ""}, "", INCOMPLETE),
    (
        item("rectifying", "major", plan=HazardPlan(**PLAN), production_stop="none", **READY),
        "plan",
        E,
        {"plan": HazardPlan(**{**PLAN, "schedule": ""})},
        "",
        INCOMPLETE,
    ),
    (item("graded", **READY), "plan", E, {"measures": ""}, "", "graded"),  # (not started)
    (item(), "plan", E, {}, "nothing", INCOMPLETE),
    (item("review_requested"), "plan", E, {"measures": "x"}, "", CONFLICT),
    (item(), "plan", C, {"measures": "x"}, "", FORBIDDEN),
    (item("graded", **READY), "start", E, {}, "", "rectifying"),
    (item("graded", deadline=T0 + DAY_MS), "start", E, {}, "", INCOMPLETE),  # no person, measures
    (item("graded", "major", **READY), "start", E, {}, "", INCOMPLETE),  # no plan
    (
        item("graded", "major", plan=HazardPlan(**PLAN), production_stop="partial", **READY),
        "start",
        E,
        {},
        "",
        "rectifying",
    ),
    (
        item(
            "graded",
            "major",
            plan=HazardPlan(**{**PLAN, "schedule": " "}),
            production_stop="partial",
            **READY,
        ),
        "start",
        E,
        {},
        "",
        INCOMPLETE,
    ),
    (item("rejected", **READY), "start", E, {}, "", "rectifying"),
    (item("reported", **READY), "start", E, {}, "", CONFLICT),  # not graded
    (item("graded", **READY), "start", C, {}, "", FORBIDDEN),
    (item("rectifying"), "request-review", E, {}, "已加装备用风机", "review_requested"),
    (item("rectifying"), "request-review", E, {}, " ", INCOMPLETE),
    (item("graded"), "request-review", E, {}, "done", CONFLICT),
    (item("review_requested"), "accept", C, {}, "", "accepted"),
    (item("review_requested"), "accept", E, {}, "", FORBIDDEN),
    (item("review_requested"), "reject", C, {}, "切换装置未联调", "rejected"),
    (item("review_requested"), "reject", C, {}, "", INCOMPLETE),
    (item("accepted"), "close", C, {}, "现场验收合格, 予以销号", "closed"),
    (item("accepted"), "close", C, {}, "", INCOMPLETE),
    (item("review_requested"), "close", C, {}, "x", CONFLICT),
    (item("closed"), "deadline", C, {"deadline": T0 + DAY_MS}, "延期", CONFLICT),
    (item("rectifying"), "deadline", C, {"deadline": T0 + DAY_MS}, "延期: 到货晚", "rectifying"),
    (item("rectifying"), "deadline", C, {"deadline": T0 + DAY_MS}, "", INCOMPLETE),
    (item("rectifying"), "deadline", C, {"deadline": T0 - 1}, "过去", INCOMPLETE),
    (item("rectifying"), "deadline", E, {"deadline": T0 + DAY_MS}, "延期", FORBIDDEN),
    (item("closed"), "comment", E, {}, "补充照片", "closed"),
    (item(), "fly", C, {}, "", CONFLICT),
]


@pytest.mark.parametrize(("before", "action", "party", "changes", "comment", "after"), STEPS)
def test_the_state_machine(
    before: HazardItem,
    action: str,
    party: Any,
    changes: dict[str, Any],
    comment: str,
    after: str | type[Exception],
) -> None:
    if isinstance(after, str):
        got = advance(before, action, party, changes, comment, "k", T0 + HOUR)
        assert got.status == after
        assert got.updated_at == T0 + HOUR
        for name, value in changes.items():
            assert getattr(got, name) == value
    else:
        with pytest.raises(after):
            advance(before, action, party, changes, comment, "k", T0 + HOUR)


def test_a_review_request_is_due_in_10_days_and_a_closing_says_by_whom() -> None:
    got = advance(item("rectifying"), "request-review", E, {}, "done", "coal", T0)
    assert (got.requested_at, got.review_due) == (T0, T0 + 10 * DAY_MS)
    closed = advance(item("accepted"), "close", C, {}, "销号", "op", T0 + 5)
    assert (closed.closed_at, closed.closed_by) == (T0 + 5, "op")


def test_a_major_items_start_names_each_missing_element() -> None:
    with pytest.raises(INCOMPLETE, match=r"six elements.*plan\.objectives.*production_stop"):
        advance(item("graded", "major", **READY), "start", E, {}, "", "coal", T0)


# over HTTP, with the deadlines' alarms -----------------------------------------------------------
# an operator's and an admin's key limited to the coal tenant: the enterprise's party, not the
# centre's (tests/test_hazards_parties.py)
LIMITED = [_key("coal-op", "operator", "north-coal"), _key("coal-admin", "admin", "north-coal")]


class Hub:
    """The API app and a dispatcher over one state database, with the API's clock set here."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.reg = registry()
        self.db = StateDB(tmp_path / "state.db")
        self.store = SqliteStore(self.reg, tmp_path / "ts.db")
        self.published: list[AlarmEvent] = []
        self.now = T0
        monkeypatch.setattr(hazard_routes, "wall_ms", lambda: self.now)

        async def on_events(events: Sequence[AlarmEvent]) -> None:
            self.published.extend(events)

        keys = KeyRing([*KEYS, *LIMITED])
        ctx = AppContext(self.reg, self.store, self.db, Metrics(), keys, on_events=on_events)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
        )

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.reg, self.store, self.db, Metrics())

    async def report(self, body: dict[str, Any], who: str = "coal") -> httpx.Response:
        return await self.client.post("/api/v1/hazards", json=body, headers=auth(who))

    async def step(
        self, hazard_id: int, action: str, who: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/hazards/{hazard_id}/{action}", json=body, headers=auth(who)
        )

    async def get(self, path: str, who: str = "coal", **params: Any) -> httpx.Response:
        return await self.client.get(f"/api/v1/{path}", params=params, headers=auth(who))


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    h = Hub(tmp_path, monkeypatch)
    await h.store.open()
    try:
        yield h
    finally:
        await h.client.aclose()
        await h.store.close()
        h.db.close()


REPORT = {
    "site": "face-1301",
    "category": "通风",
    "description": "1301 掘进工作面局部通风机无双电源自动切换",
    "location": "1301 运输巷",
    "found_by": "安全科 李四",
}


def ok(r: httpx.Response, code: int = 200) -> dict[str, Any]:
    assert r.status_code == code, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_major_item_from_its_report_to_its_closing(hub: Hub) -> None:
    made = ok(await hub.report(REPORT), 201)
    hid = made["id"]
    assert (made["tenant"], made["status"], made["source"], made["reported_by"]) == (
        "north-coal", "reported", "self_check", "coal",
    )  # fmt: skip
    assert made["found_at"] == T0 and made["overdue"] is False
    # the enterprise may not grade its own item; the centre grades it major with a deadline
    r = await hub.step(hid, "grade", "coal", {"grade": "major"})
    assert r.status_code == 403 and "monitoring centre" in r.json()["detail"]
    deadline = T0 + 30 * DAY_MS
    graded = ok(await hub.step(hid, "grade", "op", {"grade": "major", "deadline": deadline}))
    assert (graded["status"], graded["grade"], graded["deadline"]) == ("graded", "major", deadline)
    # a major item does not start its rectification without the plan's six elements
    hub.now += HOUR
    ok(await hub.step(hid, "plan", "coal", {"responsible_person": "张工", "measures": "加装"}))
    r = await hub.step(hid, "start", "coal")
    assert r.status_code == 422 and "six elements" in r.json()["detail"]
    half = {k: PLAN[k] for k in ("objectives", "methods", "funds_materials")}
    ok(await hub.step(hid, "plan", "coal", {"plan": half, "production_stop": "partial"}))
    r = await hub.step(hid, "start", "coal")
    assert r.status_code == 422 and "plan.responsible" in r.json()["detail"]
    assert "plan.objectives" not in r.json()["detail"]  # the elements given before are kept
    rest = {k: PLAN[k] for k in ("responsible", "schedule", "safety_emergency")}
    planned = ok(await hub.step(hid, "plan", "coal", {"plan": rest, "funds_yuan": 120000}))
    assert planned["plan"] == PLAN
    assert (await hub.step(hid, "start", "op")).status_code == 403  # the enterprise's step
    assert ok(await hub.step(hid, "start", "coal"))["status"] == "rectifying"
    # the review: requested with what was done; the centre rejects, then accepts and closes
    hub.now += 5 * DAY_MS
    assert (await hub.step(hid, "request-review", "coal", {})).status_code == 422
    asked = ok(await hub.step(hid, "request-review", "coal", {"comment": "已加装, 已联调"}))
    assert (asked["status"], asked["review_due"]) == ("review_requested", hub.now + 10 * DAY_MS)
    assert (await hub.step(hid, "reject", "op", {"comment": " "})).status_code == 422
    r = await hub.step(hid, "close", "op", {"comment": "销号"})
    assert r.status_code == 409 and "accepted" in r.json()["detail"]
    assert ok(await hub.step(hid, "reject", "op", {"comment": "切换装置未联调"}))["status"] == (
        "rejected"
    )
    assert ok(await hub.step(hid, "start", "coal"))["status"] == "rectifying"
    ok(await hub.step(hid, "request-review", "coal", {"comment": "联调记录已上传"}))
    ok(await hub.step(hid, "accept", "op", {"comment": "现场验收合格"}))
    closed = ok(await hub.step(hid, "close", "op", {"comment": "予以销号"}))
    assert (closed["status"], closed["closed_by"]) == ("closed", "op")
    # the audit: every step, who, from what to what, why
    audit = [
        (e["action"], e["from_status"], e["to_status"], e["actor"], e["party"])
        for e in closed["events"]
    ]
    assert audit == [
        ("report", None, "reported", "coal", "enterprise"),
        ("grade", "reported", "graded", "op", "centre"),
        ("plan", "graded", "graded", "coal", "enterprise"),
        ("plan", "graded", "graded", "coal", "enterprise"),
        ("plan", "graded", "graded", "coal", "enterprise"),
        ("start", "graded", "rectifying", "coal", "enterprise"),
        ("request-review", "rectifying", "review_requested", "coal", "enterprise"),
        ("reject", "review_requested", "rejected", "op", "centre"),
        ("start", "rejected", "rectifying", "coal", "enterprise"),
        ("request-review", "rectifying", "review_requested", "coal", "enterprise"),
        ("accept", "review_requested", "accepted", "op", "centre"),
        ("close", "accepted", "closed", "op", "centre"),
    ]
    assert closed["events"][1]["changes"] == {"grade": "major", "deadline": deadline}
    assert closed["events"][7]["comment"] == "切换装置未联调"
    assert (await hub.step(hid, "grade", "op", {"grade": "general"})).status_code == 409
    assert hub.published == []  # no deadline missed, no alarm


async def test_another_enterprise_sees_404_and_bad_bodies_are_422(hub: Hub) -> None:
    hid = ok(await hub.report(REPORT), 201)["id"]
    assert (await hub.get(f"hazards/{hid}", "chem")).status_code == 404
    assert (await hub.step(hid, "plan", "chem", {"measures": "x"})).status_code == 404
    assert (await hub.step(hid, "grade", "chem-op", {"grade": "major"})).status_code == 404
    assert ok(await hub.get("hazards", "chem")) == []
    assert (await hub.get("hazards", "chem", tenant="north-coal")).status_code == 404
    assert [i["id"] for i in ok(await hub.get("hazards", "op"))] == [hid]
    assert ok(await hub.get(f"hazards/{hid}", "viewer"))["id"] == hid
    assert (await hub.get("hazards/999")).status_code == 404
    assert (await hub.report({**REPORT, "tenant": "north-coal"}, "chem")).status_code == 404
    assert (await hub.report({**REPORT, "site": "no-such"})).status_code == 404
    assert (await hub.report(REPORT, "viewer")).status_code == 403
    assert (await hub.step(hid, "plan", "viewer", {"measures": "x"})).status_code == 403
    r = await hub.client.post("/api/v1/hazards", json=REPORT)
    assert r.status_code == 401
    bad: list[tuple[dict[str, Any], str]] = [
        ({**REPORT, "colour": "red"}, "colour"),
        ({**REPORT, "description": " \u200b "}, "a note is required"),
        ({**REPORT, "found_at": T0 // 1000}, "looks like seconds"),
        ({**REPORT, "found_at": str(T0)}, "found_at"),
        ({**REPORT, "grade": "huge"}, "grade"),
        ({**REPORT, "deadline": T0 - 1}, "not after now"),
        ({**REPORT, "deadline": T0 + 3661 * DAY_MS}, "more than 3660 days ahead"),
        ({**REPORT, "found_at": T0 + 600_000}, "later than the hub's clock"),
        ({k: v for k, v in REPORT.items() if k != "site"}, "give site"),
    ]
    for body, says in bad:
        r = await hub.report(body)
        assert r.status_code == 422, (body, r.text)
        assert says in r.text, (body, r.text)
    assert (await hub.report(REPORT, "op")).status_code == 422  # which tenant: several seen
    r = await hub.step(hid, "grade", "op", {"grade": "major", "measures": "x"})
    assert r.status_code == 422 and "does not set measures" in r.text
    assert (await hub.step(hid, "plan", "coal", {"plan": {"budget": 1}})).status_code == 422
    r = await hub.step(hid, "plan", "coal", {"plan": {}})
    assert r.status_code == 422 and "at least one of its six elements" in r.text
    assert (await hub.step(hid, "fly", "op", {})).status_code == 404
    assert (await hub.get("hazards", status="open")).status_code == 422
    assert (await hub.get("hazards", site="no-such")).status_code == 404
    assert (await hub.get("hazards", "chem", site="face-1301")).status_code == 404
    assert [i["id"] for i in ok(await hub.get("hazards", site="face-1301"))] == [hid]
    assert len(ok(await hub.get(f"hazards/{hid}"))["events"]) == 1  # nothing taken


async def test_an_item_opened_from_an_alarm_is_linked_and_filled(hub: Hub) -> None:
    locks = LockTestAlarms(hub.db, hub.reg)
    locks.judge(T0 - 20 * DAY_MS)
    (raised,) = locks.judge(T0)
    body = {"from_alarm": raised.alarm_id, "description": "闭锁测试超期未做"}
    made = ok(await hub.report(body), 201)
    assert (made["source"], made["site"], made["alarm_ids"], made["sensor_ids"]) == (
        "monitoring_alarm", "face-1301", [raised.alarm_id], ["ch4-t1"],
    )  # fmt: skip
    assert made["tenant"] == "north-coal"
    # another enterprise's alarm is not found; the centre opens one (an inspection's)
    assert (await hub.report(body, "chem")).status_code == 404
    by_centre = ok(await hub.report(body, "op"), 201)
    assert (by_centre["tenant"], by_centre["reported_by"]) == ("north-coal", "op")
    r = await hub.report({**body, "tenant": "acme-chem"}, "op")
    assert r.status_code == 422
    assert (await hub.report({**REPORT, "alarm_ids": [raised.alarm_id]}, "chem")).status_code == 404
    # found when the alarm started, unless the body says when
    row = hub.db.get_alarm(raised.alarm_id)
    assert row is not None and made["found_at"] == row.started_ts != T0
    assert ok(await hub.report({**body, "found_at": T0 - HOUR}), 201)["found_at"] == T0 - HOUR


async def test_a_proposed_deadline_binds_nothing_until_the_centre_sets_one(hub: Hub) -> None:
    proposed = T0 + 3650 * DAY_MS
    made = ok(await hub.report({**REPORT, "deadline": T0 + DAY_MS}), 201)
    hid = made["id"]
    assert made["deadline"] is None
    assert made["events"][0]["changes"] == {"proposed_deadline": T0 + DAY_MS}
    # past the proposed date, an item still reported is not overdue and raises nothing
    hub.now = T0 + 2 * DAY_MS
    assert hazard_kinds(await hub.dispatcher().tick(hub.now)) == []
    assert ok(await hub.get(f"hazards/{hid}"))["overdue"] is False
    # graded without a deadline, the enterprise cannot start on a date of its own
    other = ok(await hub.report({**REPORT, "deadline": proposed}), 201)["id"]
    ok(await hub.step(other, "grade", "op", {"grade": "general"}))
    ok(await hub.step(other, "plan", "coal", {"responsible_person": "张工", "measures": "加装"}))
    r = await hub.step(other, "start", "coal")
    assert r.status_code == 422 and "deadline" in r.json()["detail"]


async def test_ids_text_and_found_at_out_of_bounds_are_422(hub: Hub) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({**REPORT, "alarm_ids": [99999999999999999999]}, "alarm_ids"),
        ({**REPORT, "alarm_ids": [0]}, "alarm_ids"),
        ({**REPORT, "alarm_ids": list(range(1, 102))}, "alarm_ids"),
        ({**REPORT, "sensor_ids": [""]}, "sensor_ids"),
        ({**REPORT, "category": "通风\x00"}, "control"),
        ({**REPORT, "found_by": "李四\x1b[2J"}, "control"),
        ({**REPORT, "location": "巷道\x07"}, "control"),
        ({**REPORT, "location": "巷道\n二号"}, "line break"),
        ({**REPORT, "found_at": 1}, "366 days"),
        ({**REPORT, "found_at": T0 - 367 * DAY_MS}, "366 days"),
    ]
    for body, says in bad:
        r = await hub.report(body)
        assert r.status_code == 422, (body, r.text)
        assert says in r.text, (body, r.text)
    made = ok(await hub.report({**REPORT, "category": "\u202e通风", "found_at": T0 - DAY_MS}), 201)
    assert (made["category"], made["found_at"]) == ("通风", T0 - DAY_MS)  # (U+202E taken out)
    r = await hub.step(made["id"], "plan", "coal", {"responsible_person": "张\x00工"})
    assert r.status_code == 422 and "control" in r.text


def hazard_kinds(events: Sequence[AlarmEvent]) -> list[tuple[str, str, str, str, str]]:
    return [
        (e.kind, e.sensor, e.side, e.level_name, e.tier)
        for e in events
        if e.side.startswith("hazard_") and e.kind in _CHANGES
    ]


# (the alarm's own lifecycle: its disposal overdue, its acknowledgement ... are the desk's)
_CHANGES = ("raised", "escalated", "deescalated", "cleared")


async def test_an_overdue_item_raises_once_survives_a_restart_and_its_closing_clears_it(
    hub: Hub,
) -> None:
    d = hub.dispatcher()
    general = ok(await hub.report(REPORT), 201)["id"]
    major = ok(await hub.report({**REPORT, "description": "瓦斯抽采泵站单回路供电"}), 201)["id"]
    ok(await hub.step(general, "grade", "op", {"grade": "general", "deadline": T0 + DAY_MS}))
    ok(await hub.step(major, "grade", "op", {"grade": "major", "deadline": T0 + 2 * DAY_MS}))
    assert hazard_kinds(await d.tick(T0 + HOUR)) == []
    got = await d.tick(T0 + DAY_MS + HOUR)
    assert hazard_kinds(got) == [
        ("raised", f"hazard:{general}", "hazard_overdue", "general_overdue", "yellow")
    ]
    assert got[-1].ts == T0 + DAY_MS  # stamped when the deadline passed
    assert "rectification overdue" in got[-1].comment
    assert hazard_kinds(await d.tick(T0 + DAY_MS + 2 * HOUR)) == []  # once
    got = await d.tick(T0 + 3 * DAY_MS)
    assert hazard_kinds(got) == [
        ("raised", f"hazard:{major}", "hazard_overdue", "major_overdue", "orange")
    ]
    # a restart: a new dispatcher over the same database raises (and clears) nothing
    assert hazard_kinds(await hub.dispatcher().tick(T0 + 3 * DAY_MS + HOUR)) == []
    # (and a hub process of its own: another connection to the file, its alarms retired first)
    db = StateDB(hub.tmp_path / "state.db")
    try:
        again = Dispatcher(hub.reg, hub.store, db, Metrics())
        assert hazard_kinds(await again.tick(T0 + 3 * DAY_MS + 2 * HOUR)) == []
    finally:
        db.close()
    # the list says which are overdue; the alarms are in the alarm list as any other
    hub.now = T0 + 3 * DAY_MS + 3 * HOUR
    r = await hub.get("hazards", overdue="true")
    assert sorted(i["id"] for i in ok(r)) == [general, major]
    assert ok(await hub.get("hazards", grade="major"))[0]["overdue"] is True
    (alarm,) = ok(await hub.get("alarms", sensor=f"hazard:{general}"))
    assert (alarm["side"], alarm["state"], alarm["tier"]) == ("hazard_overdue", "active", "yellow")


async def test_closing_clears_the_overdue_alarm_and_an_undecided_review_raises_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = Hub(tmp_path, monkeypatch)
    await hub.store.open()
    try:
        d = hub.dispatcher()
        hid = ok(await hub.report(REPORT), 201)["id"]
        ok(await hub.step(hid, "grade", "op", {"grade": "general", "deadline": T0 + DAY_MS}))
        ok(await hub.step(hid, "plan", "coal", {"responsible_person": "张工", "measures": "m"}))
        ok(await hub.step(hid, "start", "coal"))
        assert len(hazard_kinds(await d.tick(T0 + 2 * DAY_MS))) == 1
        # requested late: still overdue until it is closed; the review waits past its 10 days
        hub.now = T0 + 3 * DAY_MS
        ok(await hub.step(hid, "request-review", "coal", {"comment": "已整改"}))
        assert hazard_kinds(hub.published) == []
        assert hazard_kinds(await d.tick(T0 + 12 * DAY_MS)) == []
        got = await d.tick(T0 + 13 * DAY_MS + HOUR)
        assert hazard_kinds(got) == [
            ("raised", f"hazard:{hid}", "hazard_review_overdue", "general_review_overdue", "yellow")
        ]
        assert got[-1].ts == T0 + 13 * DAY_MS
        # accepted: the review's alarm cleared at once (through the API's events)
        hub.now = T0 + 14 * DAY_MS
        ok(await hub.step(hid, "accept", "op", {"comment": "验收合格"}))
        assert hazard_kinds(hub.published) == [
            ("cleared", f"hazard:{hid}", "hazard_review_overdue", "normal", "none")
        ]
        assert ok(await hub.get(f"hazards/{hid}"))["overdue"] is True  # late: until closed
        ok(await hub.step(hid, "close", "op", {"comment": "予以销号"}))
        assert hazard_kinds(hub.published[1:]) == [
            ("cleared", f"hazard:{hid}", "hazard_overdue", "normal", "none")
        ]
        assert hub.published[-1].actor is None and "no longer overdue" in hub.published[-1].comment
        assert hazard_kinds(await d.tick(T0 + 20 * DAY_MS)) == []
        assert ok(await hub.get("hazards", overdue="true")) == []
    finally:
        await hub.client.aclose()
        await hub.store.close()
        hub.db.close()


async def test_a_review_requested_by_the_deadline_is_not_overdue_and_the_list_pages(
    hub: Hub,
) -> None:
    ids = [ok(await hub.report(REPORT), 201)["id"] for _ in range(3)]
    hid = ids[0]
    ok(await hub.step(hid, "grade", "op", {"grade": "general", "deadline": T0 + DAY_MS}))
    ok(await hub.step(hid, "plan", "coal", {"responsible_person": "张工", "measures": "m"}))
    ok(await hub.step(hid, "start", "coal"))
    ok(await hub.step(hid, "request-review", "coal", {"comment": "已整改"}))
    d = hub.dispatcher()
    assert hazard_kinds(await d.tick(T0 + 2 * DAY_MS)) == []
    hub.now = T0 + 2 * DAY_MS
    assert ok(await hub.get("hazards", overdue="true")) == []
    page = ok(await hub.get("hazards", limit=2))
    assert [i["id"] for i in page] == ids[:0:-1]
    assert [i["id"] for i in ok(await hub.get("hazards", before=ids[1]))] == [hid]
    assert [i["id"] for i in ok(await hub.get("hazards", status="review_requested"))] == [hid]
    assert ok(await hub.get("hazards", site="face-1301", tenant="north-coal", limit=1))


def test_the_audit_is_append_only(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        with db.transaction() as con:
            from alerts.hazards import insert_item

            made = insert_item(con, item(), ENTERPRISE)
        for sql in ("UPDATE hazard_events SET actor = 'x'", "DELETE FROM hazard_events"):
            with pytest.raises(Exception, match="append-only"), db.transaction() as con:
                con.execute(sql)
        assert db.query("SELECT hazard_id, action FROM hazard_events") == [(made.id, "report")]
    finally:
        db.close()
    raw = sqlite3.connect(tmp_path / "state.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM hazard_events")
    raw.close()


def test_the_tick_reads_only_the_items_past_a_deadline_or_with_an_alarm(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    now = T0 + 5 * DAY_MS
    try:
        with db.transaction() as con:
            from alerts.hazards import insert_item, open_items

            made = [
                insert_item(con, it, ENTERPRISE).id
                for it in (
                    item(),  # no deadline
                    item("rectifying", deadline=T0 + 9 * DAY_MS),  # before it
                    item("rectifying", deadline=T0 + DAY_MS),  # past it
                    item("review_requested", deadline=T0 + 9 * DAY_MS, review_due=T0 + DAY_MS),
                    item("closed", deadline=T0 + DAY_MS),
                    item(),  # (its alarm active: given by id)
                )
            ]
            got = [i.id for i in open_items(con, now, [made[5]])]
        assert got == [made[2], made[3], made[5]]
    finally:
        db.close()


# the alarm -> hazard rules ----------------------------------------------------------------------
RULES = """
hazards:
  from_alarms:
    - {kinds: [fault], after_h: 2, tenants: [north-coal], category: 监控系统}
"""


def ruled_registry(rules: str = RULES) -> Registry:
    config = parse_document(CONFIG.format(t1_plan="") + rules, HubConfig, "hazards.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "hazards.yaml")


async def test_a_sensor_in_fault_too_long_opens_one_item_linked_to_its_alarm(
    tmp_path: Path,
) -> None:
    reg = ruled_registry()
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics())
        t1 = reg.sensor("ch4-t1")
        assert t1 is not None
        await d.judge(batch(t1.index, T0, math.nan, 0, quality=1), [], T0 + 100)
        (fault,) = db.active_alarms()
        assert kind_name(fault.side) == "fault"
        await d.tick(T0 + 2 * HOUR - 1000)
        assert list_items(db, HazardFilter(None), 10) == []
        await d.tick(T0 + 2 * HOUR + 60_000)
        (made,) = list_items(db, HazardFilter(None), 10)
        assert (made.tenant, made.site, made.source, made.status, made.category) == (
            "north-coal", "face-1301", "monitoring_alarm", "reported", "监控系统",
        )  # fmt: skip
        assert (made.alarm_ids, made.sensor_ids, made.found_at) == ((fault.id,), ("ch4-t1",), T0)
        assert "fault 持续超过 2 h: ch4-t1" in made.description
        (report,) = item_events(db, made.id)
        assert (report.action, report.actor, report.party) == ("report", None, "hub")
        # once: later ticks, and a restarted hub, open nothing more for the same alarm
        await d.tick(T0 + 3 * HOUR)
        again = Dispatcher(reg, store, db, Metrics())
        await again.tick(T0 + 4 * HOUR)
        assert len(list_items(db, HazardFilter(None), 10)) == 1
    finally:
        await store.close()
        db.close()


async def test_a_rule_opens_nothing_for_an_alarm_linked_by_hand_and_at_most_a_cap_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = ruled_registry()
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics())
        for sensor in ("ch4-t1", "ch4-t0"):
            info = reg.sensor(sensor)
            assert info is not None
            await d.judge(batch(info.index, T0, math.nan, 0, quality=1), [], T0 + 100)
        first, second = sorted(db.active_alarms(), key=lambda r: r.id)
        with db.transaction() as con:  # (as `from_alarm` links it)
            from alerts.hazards import insert_item

            insert_item(con, replace(item(), alarm_ids=(first.id,)), ENTERPRISE)
        monkeypatch.setattr(hazardrules, "MAX_OPENED_PER_PASS", 0)
        await d.tick(T0 + 3 * HOUR)
        assert len(list_items(db, HazardFilter(None), 10)) == 1  # the cap: none this pass
        monkeypatch.setattr(hazardrules, "MAX_OPENED_PER_PASS", 50)
        await d.tick(T0 + 3 * HOUR + 60_000)
        got = list_items(db, HazardFilter(None), 10)
        assert [i.alarm_ids for i in got] == [(second.id,), (first.id,)]  # the next pass
    finally:
        await store.close()
        db.close()


async def test_a_gateway_offline_too_long_opens_one_item_not_one_per_device(
    tmp_path: Path,
) -> None:
    silent = CONFIG.format(t1_plan="").replace("kind: methane,", "kind: methane, no_data_s: 60,")
    silent = silent.replace("kind: power_feed", "kind: power_feed, no_data_s: 60")
    config = parse_document(silent + RULES.replace("[fault]", "[no_data]"), HubConfig, "h.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    reg = build_registry(config, profiles, packs, "h.yaml")
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics())
        for sensor in ("ch4-t1", "ch4-t2", "ch4-t0", "feed"):
            info = reg.sensor(sensor)
            assert info is not None
            await d.judge(batch(info.index, T0, 0.1, 0, quality=0), [], T0 + 100)
        (dev,) = reg.devices.values()
        change = GatewayChange("north-coal", "face-1301", dev.spec.gateway, True, T0 + 60_000)
        d.book.apply_gateways([change], T0 + 60_000)
        for minute in range(1, 200, 5):
            await d.tick(T0 + minute * 60_000)
        rules = {r.rule for r in db.active_alarms()}
        assert {"gateway", "comm_loss"} <= rules  # the gateway's and the device's alarms
        (made,) = list_items(db, HazardFilter(None), 10)
        assert made.sensor_ids == (f"gateway:north-coal/face-1301/{dev.spec.gateway}",)
    finally:
        await store.close()
        db.close()


def test_a_rule_naming_an_unknown_tenant_or_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"hazard_overdue: a hidden-danger item's own"):
        ruled_registry(RULES.replace("[fault]", "[fault, hazard_overdue]"))
    with pytest.raises(ConfigError, match=r"hazards\.from_alarms\.0\.tenants: unknown tenant"):
        ruled_registry(RULES.replace("north-coal", "south-coal"))
    with pytest.raises(ConfigError, match=r"hazards\.from_alarms\.0\.kinds"):
        ruled_registry(RULES.replace("[fault]", "[faults]"))
    with pytest.raises(ConfigError, match=r"after_h"):
        ruled_registry(RULES.replace("after_h: 2", "after_h: -1"))


async def test_the_detail_says_which_steps_the_key_may_take_now(hub: Hub) -> None:
    """`steps`: the caller's party's steps from the item's status, `start` only once the
    centre has set a deadline (graded without one, the hub would refuse it); none for a
    viewer. The dashboard offers exactly these."""
    hid = ok(await hub.report(REPORT), 201)["id"]
    assert ok(await hub.get(f"hazards/{hid}", "op"))["steps"] == ["grade", "deadline", "comment"]
    assert ok(await hub.get(f"hazards/{hid}"))["steps"] == ["plan", "comment"]
    assert ok(await hub.get(f"hazards/{hid}", "viewer"))["steps"] == []
    graded = ok(await hub.step(hid, "grade", "op", {"grade": "general"}))
    assert graded["steps"] == ["grade", "deadline", "comment"]  # the answer to the step too
    assert ok(await hub.get(f"hazards/{hid}"))["steps"] == ["plan", "comment"]  # no deadline
    ok(await hub.step(hid, "deadline", "op", {"deadline": T0 + DAY_MS, "comment": "限期"}))
    assert ok(await hub.get(f"hazards/{hid}"))["steps"] == ["plan", "start", "comment"]
    ok(await hub.step(hid, "plan", "coal", {"responsible_person": "张工", "measures": "加装"}))
    assert ok(await hub.step(hid, "start", "coal"))["steps"] == [
        "plan",
        "request-review",
        "comment",
    ]
