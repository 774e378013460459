"""The monitoring centre's review of an enterprise's closing (督办 / 审核销号) over HTTP: an
enterprise's key closing an alarm that reached a reviewed tier (red by default) submits it for
review (`disposal` `review`), and a centre key (admin or operator of every tenant) approves it
(closed) or returns it (back to `verified`: disposed of and closed again); every step in the
journal, the list's `disposal=review`, the CSV, its deadline and overdue mark, the bulk route,
and all of it across a hub restart.

Alarms come from real readings through `evaluate` and `AlarmBook` (`test_api_alarms.Hub`); the
people's part goes through the HTTP API only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import test_api_alarms
from pydantic import ValidationError
from test_api_alarms import Hub, journal

from alerts.desk import AlarmDesk
from api.alarmcsv import COLUMNS
from telemetry.config import HubConfig
from telemetry.notifyconfig import DisposalSpec, NotifySettings


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with test_api_alarms.opened(tmp_path) as h:
        yield h


COAL_ID = "north-coal"
DAY_MS = 86_400_000
RED_DISPOSE_MS = 1_800_000  # red's dispose_s, counted again from a return


def red_returned(hub: Hub) -> int:
    """A methane alarm raised yellow, escalated to red (power cut), returned to normal."""
    (raised, escalated) = hub.feed("ch4-t1", [1.1, 1.6])
    assert (raised.kind, escalated.kind, escalated.tier) == ("raised", "escalated", "red")
    (cleared,) = hub.feed("ch4-t1", [0.5])
    assert cleared.kind == "cleared"
    return raised.alarm_id


def yellow_returned(hub: Hub, sensor: str = "ch4-t1") -> int:
    (raised,) = hub.feed(sensor, [1.1])
    assert raised.tier == "yellow"
    hub.feed(sensor, [0.5])
    return raised.alarm_id


async def step(hub: Hub, alarm_id: int, what: str, who: str, note: str = "n") -> dict[str, Any]:
    r = await hub.post(f"/alarms/{alarm_id}/disposal", {"step": what, "note": note}, who)
    assert r.status_code == 200, (what, who, r.text)
    body: dict[str, Any] = r.json()
    return body


async def disposed(hub: Hub, alarm_id: int, who: str = "coal") -> None:
    await step(hub, alarm_id, "verify", who)
    await step(hub, alarm_id, "dispose", who)


def last(alarm: dict[str, Any]) -> tuple[str, str | None, str, str]:
    return journal(alarm)[-1]


async def test_an_enterprises_close_of_a_red_alarm_waits_for_the_centres_review(
    hub: Hub,
) -> None:
    alarm_id = red_returned(hub)
    await disposed(hub, alarm_id)
    a = await step(hub, alarm_id, "close", "coal", "通风恢复，甲烷降至 0.5%")
    assert (a["disposal"], a["overdue"]) == ("review", False)
    assert last(a) == ("submitted", "coal", "通风恢复，甲烷降至 0.5%", "rtn_unack")
    submitted = a["events"][-1]["ts"]
    assert a["disposal_due"] == submitted + DAY_MS  # red's review_s, from the submission
    # the enterprise's close again, and its own approval, are refused
    r = await hub.post(f"/alarms/{alarm_id}/disposal", {"step": "close", "note": "n"}, "coal")
    assert r.status_code == 409 and "awaits the monitoring centre's review" in r.json()["detail"]
    r = await hub.post(f"/alarms/{alarm_id}/review", {"decision": "approve", "note": "ok"}, "coal")
    assert r.status_code == 403 and "monitoring centre's" in r.json()["detail"]
    # shown as such: in the list by `disposal=review`, to the enterprise and the centre
    for who in ("coal", "op"):
        assert await hub.ids(who, disposal="review") == [alarm_id]
        assert await hub.ids(who, disposal="closed") == []
        assert await hub.ids(who, open="true") == [alarm_id]
    assert (await hub.get("/alarms", params={"disposal": "reviewed"})).status_code == 422
    assert (await hub.alarm(alarm_id, "coal"))["disposal"] == "review"
    # and handed over at the shift's end: the centre's work waiting
    for who in ("coal", "op"):
        waiting = (await hub.get("/handover", who)).json()["review"]
        assert (waiting["count"], [x["id"] for x in waiting["alarms"]]) == (1, [alarm_id])
    published = [(e.kind, e.actor, e.disposal) for e in hub.published]
    assert published[-1] == ("submitted", "coal", "review")


async def test_the_centre_returns_then_approves_and_the_journal_says_who_when_why(
    hub: Hub,
) -> None:
    alarm_id = red_returned(hub)
    await step(hub, alarm_id, "verify", "coal", "现场核实")
    await step(hub, alarm_id, "dispose", "coal", "已处置")
    await step(hub, alarm_id, "close", "coal", "申请销号")
    # returned, with the reason, back to `verified`: the enterprise disposes of it again
    r = await hub.post(
        f"/alarms/{alarm_id}/review", {"decision": "return", "note": "未附检测记录"}, "op"
    )
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["disposal"], last(a)) == ("verified", ("returned", "op", "未附检测记录", "rtn_unack"))
    # the dispose step's full time again, from the return (not overdue at once)
    assert a["disposal_due"] == a["events"][-1]["ts"] + RED_DISPOSE_MS
    r = await hub.post(f"/alarms/{alarm_id}/disposal", {"step": "close", "note": "n"}, "coal")
    assert r.status_code == 409 and "disposal is verified, not disposed" in r.json()["detail"]
    await step(hub, alarm_id, "dispose", "coal", "补充检测记录")
    a = await step(hub, alarm_id, "close", "coal", "再次申请销号")
    assert a["disposal"] == "review"
    r = await hub.post(
        f"/alarms/{alarm_id}/review", {"decision": "approve", "note": "同意销号"}, "admin"
    )
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["disposal"], a["disposal_due"], a["overdue"]) == ("closed", None, False)
    assert [(k, who, note) for k, who, note, _ in journal(a)[3:]] == [
        ("verified", "coal", "现场核实"),
        ("disposed", "coal", "已处置"),
        ("submitted", "coal", "申请销号"),
        ("returned", "op", "未附检测记录"),
        ("disposed", "coal", "补充检测记录"),
        ("submitted", "coal", "再次申请销号"),
        ("approved", "admin", "同意销号"),
    ]
    # the acknowledgement apart, it is finished; a second review is refused
    await hub.post(f"/alarms/{alarm_id}/acknowledge", {"note": "seen"}, "coal")
    assert await hub.ids("op", open="false") == [alarm_id]
    r = await hub.post(f"/alarms/{alarm_id}/review", {"decision": "return", "note": "x"}, "op")
    assert r.status_code == 409 and "disposal is closed, not review" in r.json()["detail"]
    # the CSV: the latest submission and return, how many returns, the close the approval
    r = await hub.get("/alarms", params={"format": "csv"})
    (row,) = csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    assert tuple(row) == COLUMNS
    assert (row["disposal"], row["closed_by"], row["closed_note"], row["approved"]) == (
        "closed",
        "admin",
        "同意销号",
        "true",
    )
    assert (row["submitted_by"], row["submitted_note"]) == ("coal", "再次申请销号")
    assert (row["returned_by"], row["returned_note"], row["returns"]) == ("op", "未附检测记录", "1")
    assert row["disposed_note"] == "补充检测记录"  # the disposal approved, not the first
    assert row["submitted_at_ms"] and int(row["returned_at_ms"]) < int(row["submitted_at_ms"])
    # the handling report counts the approval as the close
    report = (await hub.get("/alarm-quality/handling")).json()
    assert report["total"]["closed_time"]["n"] == 1
    assert report["total"]["disposal"]["closed"] == 1


# who may do what: (the key, the alarm, the action) -> the answer
REVIEW = {"decision": "approve", "note": "同意"}
RETURN = {"decision": "return", "note": "重新处置"}
REFUSALS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (key, route, body, status, the answer says)
    ("coal", "review", REVIEW, 403, "monitoring centre's"),  # its own: never
    ("coal", "review", RETURN, 403, "monitoring centre's"),
    ("chem", "review", REVIEW, 404, "not found"),  # another tenant's alarm: as if none
    ("chem-op", "review", REVIEW, 404, "not found"),  # a centre role limited to acme-chem
    ("viewer", "review", REVIEW, 403, "this key may only read"),
    ("op", "review", {"decision": "return"}, 422, "note"),  # a return says why
    ("op", "review", {"decision": "return", "note": ""}, 422, "note"),
    ("op", "review", {"decision": "return", "note": "  "}, 422, "note"),
    ("op", "review", {"decision": "approve", "note": ""}, 422, "note"),
    ("op", "review", {"decision": "close", "note": "n"}, 422, "decision"),
    ("op", "review", {"decision": "approve", "note": "n", "x": 1}, 422, "x"),
    ("coal", "disposal", {"step": "close", "note": "n"}, 409, "awaits"),
    ("op", "disposal", {"step": "close", "note": "n"}, 409, "awaits"),  # approve it instead
]


@pytest.mark.parametrize(
    ("who", "route", "body", "status", "says"),
    REFUSALS,
    ids=[f"{w}/{r}/{s}/{i}" for i, (w, r, _, s, _) in enumerate(REFUSALS)],
)
async def test_a_review_refused_changes_nothing(
    hub: Hub, who: str, route: str, body: dict[str, Any], status: int, says: str
) -> None:
    alarm_id = red_returned(hub)
    await disposed(hub, alarm_id)
    await step(hub, alarm_id, "close", "coal")
    before = await hub.alarm(alarm_id)
    published = len(hub.published)
    r = await hub.post(f"/alarms/{alarm_id}/{route}", body, who)
    assert r.status_code == status, r.text
    assert says in r.text
    assert await hub.alarm(alarm_id) == before
    assert len(hub.published) == published


# the standing of the closer -> where an alarm goes: (who closes, its tier, the disposal after,
# the journal's word)
CLOSES = [
    ("coal", "red", "review", "submitted"),  # an enterprise: to the centre's review
    ("op", "red", "closed", "closed"),  # the centre's close is the review
    ("admin", "red", "closed", "closed"),
    ("coal", "yellow", "closed", "closed"),  # below the reviewed tiers: closed by itself
    ("op", "yellow", "closed", "closed"),
]


@pytest.mark.parametrize(("who", "tier", "after", "kind"), CLOSES)
async def test_who_closes_decides_where_the_alarm_goes(
    hub: Hub, who: str, tier: str, after: str, kind: str
) -> None:
    alarm_id = red_returned(hub) if tier == "red" else yellow_returned(hub)
    await disposed(hub, alarm_id)
    a = await step(hub, alarm_id, "close", who, "done")
    assert (a["peak_tier"], a["disposal"], last(a)[:3]) == (tier, after, (kind, who, "done"))


async def test_the_reviewed_tiers_are_the_configurations(hub: Hub) -> None:
    """`notify.disposal.review_tiers`: none, and orange with red ... (here: yellow)."""
    ctx = hub.app.state.ctx
    ctx.desk = AlarmDesk(hub.db, hub.reg, hub.book, DisposalSpec(review_tiers=()))
    red = red_returned(hub)
    await disposed(hub, red)
    assert (await step(hub, red, "close", "coal"))["disposal"] == "closed"
    ctx.desk = AlarmDesk(hub.db, hub.reg, hub.book, DisposalSpec(review_tiers=("yellow", "red")))
    yellow = yellow_returned(hub)
    await disposed(hub, yellow)
    a = await step(hub, yellow, "close", "coal")
    assert a["disposal"] == "review"
    # yellow's review_s (the default, a day) from the submission
    assert a["disposal_due"] == a["events"][-1]["ts"] + DAY_MS


def test_the_reviewed_tiers_are_checked_at_load() -> None:
    assert DisposalSpec().review_tiers == ("red",)
    got = NotifySettings.model_validate({"disposal": {"review_tiers": ["orange", "red"]}})
    assert got.disposal.reviewed("orange") and not got.disposal.reviewed("yellow")
    assert got.disposal.red.review_s == 86400
    for bad in (["red", "red"], ["purple"], "red", [None]):
        with pytest.raises(ValidationError):
            HubConfig.model_validate({"notify": {"disposal": {"review_tiers": bad}}})
    with pytest.raises(ValidationError, match="each tier once"):
        DisposalSpec.model_validate({"review_tiers": ["red", "red"]})
    with pytest.raises(ValidationError):
        DisposalSpec.model_validate(
            {"red": {"verify_s": 1, "dispose_s": 1, "close_s": 1, "review_s": 0}}
        )


async def test_a_review_past_its_deadline_is_overdue_and_the_step_clears_it(hub: Hub) -> None:
    alarm_id = red_returned(hub)
    await disposed(hub, alarm_id)
    a = await step(hub, alarm_id, "close", "coal")
    due = a["disposal_due"]
    assert hub.desk.tick(due - 1) == []  # not yet
    (ev,) = hub.desk.tick(due)
    assert (ev.kind, ev.disposal, ev.actor) == ("overdue", "review", "system")
    a = await hub.alarm(alarm_id)
    assert (a["overdue"], a["disposal_due"]) == (True, due)
    assert await hub.ids("op", overdue="true") == [alarm_id]
    assert hub.desk.tick(due + 5_000) == []  # once
    r = await hub.post(f"/alarms/{alarm_id}/review", REVIEW, "op")
    assert (r.json()["disposal"], r.json()["overdue"]) == ("closed", False)


async def test_bulk_closing_follows_the_review_and_approving_is_the_centres(hub: Hub) -> None:
    red = red_returned(hub)
    yellow = yellow_returned(hub)
    for i in (red, yellow):
        await disposed(hub, i)

    async def bulk(ids: list[int], what: str, who: str) -> dict[str, Any]:
        r = await hub.post("/alarms/disposal", {"ids": ids, "step": what, "note": "批量"}, who)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    got = await bulk([red, yellow], "close", "coal")
    assert [(x["id"], x["result"], x["disposal"]) for x in got["results"]] == [
        (red, "done", "review"),
        (yellow, "done", "closed"),
    ]
    assert last(await hub.alarm(red))[:2] == ("submitted", "coal")
    got = await bulk([red], "close", "coal")  # submitted already
    assert got["results"][0]["result"] == "already"
    for what in ("approve", "return"):  # the enterprise reviews nothing, in bulk neither
        r = await hub.post("/alarms/disposal", {"ids": [red], "step": what, "note": "n"}, "coal")
        assert r.status_code == 403 and "monitoring centre's" in r.json()["detail"]
        r = await hub.post("/alarms/disposal", {"ids": [red], "step": what, "note": "n"}, "chem-op")
        assert r.status_code == 403
    got = await bulk([red, yellow], "return", "op")
    assert [(x["result"], x["disposal"]) for x in got["results"]] == [
        ("done", "verified"),
        ("refused", "closed"),
    ]
    assert "disposal is closed, not review" in got["results"][1]["reason"]
    await step(hub, red, "dispose", "coal")
    await bulk([red], "close", "coal")
    got = await bulk([red, yellow], "approve", "op")
    assert [(x["result"], x["disposal"]) for x in got["results"]] == [
        ("done", "closed"),
        ("already", "closed"),
    ]
    assert last(await hub.alarm(red))[:3] == ("approved", "op", "批量")


async def test_a_review_waits_across_a_hub_restart(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    await hub.store.open()
    try:
        alarm_id = red_returned(hub)
        await disposed(hub, alarm_id)
        before = await step(hub, alarm_id, "close", "coal", "申请销号")
    finally:
        await hub.client.aclose()
        await hub.store.close()
        hub.notifier.close()
        hub.db.close()
    hub = Hub(tmp_path)  # the same state database, a new hub
    await hub.store.open()
    try:
        a = await hub.alarm(alarm_id)
        assert a == before
        assert (a["disposal"], last(a)[:3]) == ("review", ("submitted", "coal", "申请销号"))
        assert await hub.ids("op", disposal="review") == [alarm_id]
        r = await hub.post(f"/alarms/{alarm_id}/review", REVIEW, "coal")
        assert r.status_code == 403
        r = await hub.post(f"/alarms/{alarm_id}/review", RETURN, "op")
        assert r.status_code == 200 and r.json()["disposal"] == "verified"
        # the deadline counts from the return, across the restart too
        assert (await hub.alarm(alarm_id))["disposal_due"] == r.json()["events"][-1]["ts"] + (
            RED_DISPOSE_MS
        )
    finally:
        await hub.client.aclose()
        await hub.store.close()
        hub.notifier.close()
        hub.db.close()


CENTRE_AND_DESK = """
notify:
  subscriptions:
    - {id: city, match: {tiers: [red]}, channel: {type: webhook, url: "http://127.0.0.1:9/h"}}
    - {id: review, match: {tiers: [red], events: [submitted, overdue]},
       channel: {type: webhook, url: "http://127.0.0.1:9/r"}}
"""


async def test_an_overdue_review_is_told_to_the_centres_subscription(tmp_path: Path) -> None:
    """The review is the centre's to do: its deadline passing is an `overdue` event (at the
    alarm's tier now, matched on every tier it had) that the centre's own subscription (red,
    default events) is told of, as the other steps' are; one that asks for `submitted` hears
    each closing waiting for it."""
    from notify_rig import Rig, bare

    rig = Rig(tmp_path, CENTRE_AND_DESK)
    try:
        (raised,) = rig.feed("ch4-t1", [1.1])[:1]
        rig.feed("ch4-t1", [1.6, 0.5])
        for what in ("verify", "dispose", "close"):
            ev = rig.desk.act(
                raised.alarm_id, what, actor="coal", now=rig.now, tenants=[COAL_ID], note="n"
            )
        assert (ev.kind, ev.disposal) == ("submitted", "review")
        rig.notifier.route()
        store = rig.notifier.catalog.store
        before = {bare(r[1]) for r in store.outbox(None)}
        # a centre's subscription to the closings waiting for it hears the submission alone
        assert {k for k in before if "/*review:" in k} == {f"{COAL_ID}/*review:e{ev.event_id}"}
        row = rig.db.get_alarm(raised.alarm_id)
        assert row is not None and row.disposal_due == rig.now + DAY_MS
        rig.now = row.disposal_due
        (overdue,) = rig.desk.tick(rig.now)
        assert (overdue.kind, overdue.disposal) == ("overdue", "review")
        rig.notifier.route()
        new = {bare(r[1]) for r in store.outbox(None)} - before
        assert new == {f"{COAL_ID}/*{sub}:e{overdue.event_id}" for sub in ("city", "review")}
    finally:
        rig.notifier.close()
        rig.db.close()
