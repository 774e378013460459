"""Listed supervision (挂牌督办, DOMAIN 6 `SupervisionTicket`) over the real API: the centre lists
a major item with its deadline (level, issuing authority, document number, public notice), the
item shows it in its detail and in the list (`supervised=`), each listing or change is audited,
an enterprise can neither list nor change it, and the item's closing (销号) records its result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_hazards import HOUR, PLAN, REPORT, T0, Hub, ok

from alerts.hazardflow import DAY_MS
from api import hazardsupervise

TICKET = {
    "level": "city",
    "authority": "某市安全生产委员会",
    "document_no": "某安委办〔2027〕12号",
    "notice_url": "https://yjj.example.gov.cn/gpdb/2027-12.html",
}


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    h = Hub(tmp_path, monkeypatch)
    monkeypatch.setattr(hazardsupervise, "wall_ms", lambda: h.now)
    await h.store.open()
    try:
        yield h
    finally:
        await h.client.aclose()
        await h.store.close()
        h.db.close()


async def supervise(hub: Hub, hid: int, who: str, body: dict[str, Any]) -> Any:
    return await hub.client.post(
        f"/api/v1/hazards/{hid}/supervise", json=body, headers={"Authorization": f"Bearer k-{who}"}
    )


async def test_a_major_item_listed_shown_audited_and_its_closing_records_the_result(
    hub: Hub,
) -> None:
    hid = ok(await hub.report(REPORT), 201)["id"]
    other = ok(await hub.report(REPORT), 201)["id"]
    # not major yet; major without its deadline: the supervision's deadline is the item's
    r = await supervise(hub, hid, "op", TICKET)
    assert r.status_code == 422 and "only a major hidden danger" in r.text
    ok(await hub.step(hid, "grade", "op", {"grade": "major"}))
    r = await supervise(hub, hid, "op", TICKET)
    assert r.status_code == 422 and "no deadline" in r.text
    deadline = T0 + 30 * DAY_MS
    ok(await hub.step(hid, "deadline", "op", {"deadline": deadline, "comment": "限期 30 日"}))
    # the enterprise may neither list it nor change it; another enterprise does not see it
    r = await supervise(hub, hid, "coal", TICKET)
    assert r.status_code == 403 and "centre" in r.text
    assert (await supervise(hub, hid, "viewer", TICKET)).status_code == 403
    assert (await supervise(hub, hid, "chem", TICKET)).status_code == 404
    assert (await supervise(hub, hid, "chem-op", TICKET)).status_code == 404
    assert (await supervise(hub, 999, "op", TICKET)).status_code == 404
    hub.now = T0 + HOUR
    listed = ok(await supervise(hub, hid, "op", TICKET))
    ticket = listed["supervision"]
    assert ticket == {
        **TICKET, "issued_at": T0 + HOUR, "issued_by": "op", "deadline": deadline,
        "review_due": None, "status": "listed", "result": None, "closed_at": None,
        "updated_at": T0 + HOUR,
    }  # fmt: skip
    # the answer names the steps the listing key may take now, as the item's detail does (was
    # always none: the page offered nothing after a listing)
    assert listed["steps"] and listed["steps"] == ok(await hub.get(f"hazards/{hid}", "op"))["steps"]
    last = listed["events"][-1]
    assert (last["action"], last["party"], last["actor"]) == ("supervise", "centre", "op")
    assert last["changes"] == TICKET and last["from_status"] == last["to_status"] == "graded"
    # in the enterprise's detail and the list; supervised= filters
    assert (
        ok(await hub.get(f"hazards/{hid}"))["supervision"]["document_no"] == TICKET["document_no"]
    )
    assert [i["id"] for i in ok(await hub.get("hazards", supervised="true"))] == [hid]
    unlisted = ok(await hub.get("hazards", supervised="false"))
    assert [(i["id"], i["supervision"]) for i in unlisted] == [(other, None)]
    # the deadline is the item's: moved, the supervision's moves
    later = deadline + 15 * DAY_MS
    ok(await hub.step(hid, "deadline", "op", {"deadline": later, "comment": "延期 15 日"}))
    assert ok(await hub.get(f"hazards/{hid}"))["supervision"]["deadline"] == later
    # a change of the listing says why; only what changed is in its audit line
    r = await supervise(hub, hid, "op", {**TICKET, "level": "province"})
    assert r.status_code == 422 and "comment" in r.text
    hub.now = T0 + 2 * HOUR
    changed = ok(
        await supervise(hub, hid, "op", {**TICKET, "level": "province", "comment": "升级"})
    )
    assert changed["supervision"]["level"] == "province"
    assert changed["supervision"]["issued_at"] == T0 + HOUR
    assert changed["events"][-1]["changes"] == {"level": "province"}
    # rectified, reviewed, closed: the supervision's result is the closing's
    plan = {
        "responsible_person": "张工",
        "measures": "加装",
        "plan": PLAN,
        "production_stop": "full",
    }
    ok(await hub.step(hid, "plan", "coal", plan))
    ok(await hub.step(hid, "start", "coal"))
    ok(await hub.step(hid, "request-review", "coal", {"comment": "已整改"}))
    ok(await hub.step(hid, "accept", "op", {"comment": "验收合格"}))
    hub.now = T0 + 3 * HOUR
    closed = ok(await hub.step(hid, "close", "op", {"comment": "予以销号, 解除挂牌督办"}))
    done = closed["supervision"]
    assert (done["status"], done["result"], done["closed_at"]) == (
        "closed", "予以销号, 解除挂牌督办", T0 + 3 * HOUR
    )  # fmt: skip
    assert done["review_due"] is not None
    r = await supervise(hub, hid, "op", {**TICKET, "comment": "x"})
    assert r.status_code == 409
    # (an item not listed closes as before: no supervision)
    assert ok(await hub.get(f"hazards/{other}"))["supervision"] is None


async def test_a_listing_body_is_strict(hub: Hub) -> None:
    hid = ok(await hub.report(REPORT), 201)["id"]
    ok(await hub.step(hid, "grade", "op", {"grade": "major", "deadline": T0 + DAY_MS}))
    bad: list[tuple[dict[str, Any], str]] = [
        ({**TICKET, "notice_url": "javascript:alert(1)"}, "http"),
        ({**TICKET, "notice_url": "ftp://example.gov.cn/a"}, "http"),
        ({**TICKET, "notice_url": "https://example.gov.cn/a b"}, "no space"),
        ({**TICKET, "notice_url": "https://"}, "http"),
        ({**TICKET, "level": "town"}, "level"),
        ({**TICKET, "authority": "  "}, "words"),
        ({**TICKET, "document_no": "文号\n2"}, "line break"),
        ({k: v for k, v in TICKET.items() if k != "authority"}, "authority"),
        ({**TICKET, "deadline": T0 + DAY_MS}, "deadline"),  # (the item's: not given here)
    ]
    for body, says in bad:
        r = await supervise(hub, hid, "op", body)
        assert r.status_code == 422, (body, r.text)
        assert says in r.text, (body, r.text)
    made = ok(
        await supervise(hub, hid, "op", {k: v for k, v in TICKET.items() if k != "notice_url"})
    )
    assert made["supervision"]["notice_url"] is None  # (optional)
    assert len(ok(await hub.get(f"hazards/{hid}"))["events"]) == 3  # report, grade, supervise
