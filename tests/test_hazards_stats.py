"""The hidden-danger ledger's periodic statistics (DOMAIN 6: quarterly to the regulator, annual
by 31 Jan) over the real API: items moved through their steps with the API's clock set by the
test, counted as they were at the end of the period (an item closed after it is open at it, a
deadline moved or a grade changed after it does not change the report), per tenant the key sees
and in total; a period in ms or as a quarter or year in China time; CSV for the report."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from test_hazards import HOUR, PLAN, REPORT, T0, Hub, ok

from alerts.hazardflow import DAY_MS
from api import hazardstats

END = T0 + 30 * DAY_MS


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    h = Hub(tmp_path, monkeypatch)
    monkeypatch.setattr(hazardstats, "wall_ms", lambda: h.now)
    await h.store.open()
    try:
        yield h
    finally:
        await h.client.aclose()
        await h.store.close()
        h.db.close()


async def started(hub: Hub, hid: int, grade: str, deadline: int) -> None:
    ok(await hub.step(hid, "grade", "op", {"grade": grade, "deadline": deadline}))
    plan: dict[str, Any] = {"responsible_person": "张工", "measures": "整改"}
    if grade == "major":
        plan |= {"plan": PLAN, "production_stop": "partial"}
    ok(await hub.step(hid, "plan", "coal", plan))
    ok(await hub.step(hid, "start", "coal"))


async def reviewed(hub: Hub, hid: int, close: bool = True) -> None:
    ok(await hub.step(hid, "request-review", "coal", {"comment": "已整改"}))
    ok(await hub.step(hid, "accept", "op", {"comment": "验收合格"}))
    if close:
        ok(await hub.step(hid, "close", "op", {"comment": "予以销号"}))


async def ledger(hub: Hub) -> dict[str, int]:
    """Items moved through their steps around the period [T0, END)."""
    ids: dict[str, int] = {}
    hub.now = T0 - 2 * DAY_MS  # found before the period, closed in it by its deadline
    ids["a"] = ok(await hub.report(REPORT), 201)["id"]
    await started(hub, ids["a"], "general", T0 + 5 * DAY_MS)
    hub.now = T0 + HOUR
    for name in "bceg":
        ids[name] = ok(await hub.report(REPORT), 201)["id"]
    ids["d"] = ok(await hub.report({**REPORT, "tenant": "north-coal"}, "op"), 201)["id"]
    await started(hub, ids["b"], "major", T0 + 10 * DAY_MS)  # closed late
    await started(hub, ids["c"], "general", T0 + 5 * DAY_MS)  # overdue at the end
    await started(hub, ids["e"], "general", T0 + 20 * DAY_MS)  # closed after the end
    ok(await hub.step(ids["g"], "grade", "op", {"grade": "general", "deadline": END + 9 * DAY_MS}))
    hub.now = T0 + 4 * DAY_MS
    await reviewed(hub, ids["a"])
    hub.now = T0 + 12 * DAY_MS
    await reviewed(hub, ids["b"])
    hub.now = T0 + 15 * DAY_MS
    await reviewed(hub, ids["e"], close=False)
    # after the end: E closed, F found, C's deadline moved later, G made major
    hub.now = END + DAY_MS
    ok(await hub.step(ids["e"], "close", "op", {"comment": "予以销号"}))
    ids["f"] = ok(await hub.report(REPORT), 201)["id"]
    hub.now = END + 2 * DAY_MS
    body = {"deadline": END + 30 * DAY_MS, "comment": "延期"}
    ok(await hub.step(ids["c"], "deadline", "op", body))
    ok(await hub.step(ids["g"], "grade", "op", {"grade": "major"}))
    hub.now = END + 3 * DAY_MS
    return ids


COAL = {
    "found": 5,
    "found_general": 4,
    "found_major": 1,
    "found_self_check": 4,
    "found_inspection": 1,
    "found_monitoring_alarm": 0,
    "found_complaint": 0,
    "closed": 2,
    "closed_on_time": 1,
    "closed_late": 1,
    "open": 4,
    "open_reported": 1,
    "open_graded": 1,
    "open_rectifying": 1,
    "open_review_requested": 0,
    "open_accepted": 1,
    "open_rejected": 0,
    "overdue": 1,
    "major_stop_full": 0,
    "major_stop_partial": 1,
    "found_closed": 1,
    "rectification_rate": 20.0,
}


async def test_a_period_is_counted_as_the_items_were_at_its_end(hub: Hub) -> None:
    await ledger(hub)
    got = ok(await hub.get("hazards/stats", "op", **{"from": T0, "to": END}))
    assert (got["from"], got["to"], got["as_of"], got["period"]) == (T0, END, END, "")
    coal, chem = (
        next(r for r in got["tenants"] if r["tenant"] == t) for t in ("north-coal", "acme-chem")
    )
    assert {k: coal[k] for k in COAL} == COAL
    assert chem["found"] == 0 and chem["rectification_rate"] is None  # (none found: no rate)
    assert got["total"] == {**coal, "tenant": "total", "tenant_name": "合计"}
    # the items as they are now say otherwise: E closed, C no longer overdue, G major
    assert ok(await hub.get("hazards", "op", overdue="true")) == []
    # the enterprise: its own only; another's tenant is 404 as on the other hazard routes
    mine = ok(await hub.get("hazards/stats", "coal", **{"from": T0, "to": END}))
    assert [r["tenant"] for r in mine["tenants"]] == ["north-coal"]
    assert mine["total"]["found"] == 5
    r = await hub.get("hazards/stats", "coal", tenant="acme-chem", **{"from": T0, "to": END})
    assert r.status_code == 404
    theirs = ok(await hub.get("hazards/stats", "chem", **{"from": T0, "to": END}))
    assert [(r["tenant"], r["found"]) for r in theirs["tenants"]] == [("acme-chem", 0)]
    assert (await hub.get("hazards/stats", "chem", tenant="north-coal")).status_code == 404
    one = ok(await hub.get("hazards/stats", "op", tenant="north-coal", **{"from": T0, "to": END}))
    assert [r["tenant"] for r in one["tenants"]] == ["north-coal"]


async def test_a_quarter_or_a_year_in_china_time_and_bad_periods(hub: Hub) -> None:
    await ledger(hub)
    cst = timezone(timedelta(hours=8))

    def ms(*at: int) -> int:
        return int(datetime(*at, tzinfo=cst).timestamp() * 1000)

    q = ok(await hub.get("hazards/stats", "op", quarter="2027Q1"))
    assert (q["from"], q["to"], q["period"]) == (ms(2027, 1, 1), ms(2027, 4, 1), "2027Q1")
    assert q["as_of"] == hub.now  # the quarter is not over: judged now
    # every item but F found in the 30 days from T0, F after them: all in the quarter; open now
    # C (rectifying), D and F (reported), G (graded)
    assert (q["total"]["found"], q["total"]["open"]) == (7, 4)
    y = ok(await hub.get("hazards/stats", "op", year=2027))
    assert (y["from"], y["to"], y["total"]["found"]) == (ms(2027, 1, 1), ms(2028, 1, 1), 7)
    assert ok(await hub.get("hazards/stats", "op", year=2026))["total"]["found"] == 0
    assert ok(await hub.get("hazards/stats", "op"))["period"] == "2027Q1"  # the one in progress
    bad: list[tuple[dict[str, Any], str]] = [
        ({"quarter": "2027Q1", "year": 2027}, "give one period"),
        ({"quarter": "2027Q1", "from": T0, "to": END}, "give one period"),
        ({"quarter": "2027Q5"}, "quarter"),
        ({"from": T0}, "give both"),
        ({"from": END, "to": T0}, "to must be after from"),
        ({"from": T0 // 1000, "to": END // 1000}, "looks like seconds"),
        ({"form": T0}, "unknown query parameter"),
        # (a year the calendar has not: was a 500)
        ({"quarter": "0000Q1"}, "quarter"),
        ({"year": 10000}, "year"),
        ({"from": 0, "to": hazardstats.LAST_MS + 1}, "to"),
    ]
    for params, says in bad:
        r = await hub.get("hazards/stats", "op", **params)
        assert r.status_code == 422, (params, r.text)
        assert says in r.text, (params, r.text)


async def test_the_report_as_csv_for_a_spreadsheet(hub: Hub) -> None:
    await ledger(hub)
    r = await hub.get("hazards/stats", "op", format="csv", **{"from": T0, "to": END})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="hazard-stats_{T0}_{END}.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for the Chinese
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["tenant"] for row in rows] == ["acme-chem", "north-coal", "total"]
    coal, total = rows[1], rows[2]
    assert {k: coal[k] for k in COAL} == {k: str(v) for k, v in COAL.items()}
    assert (total["tenant_name"], total["found"], total["from_ms"]) == ("合计", "5", str(T0))
    assert total["from"].endswith("+08:00") and rows[0]["rectification_rate"] == ""
    whole = await hub.get(
        "hazards/stats", "op", format="csv", to=hazardstats.LAST_MS, **{"from": 0}
    )
    assert whole.status_code == 200 and "9999-12-31T23:59:59.999+08:00" in whole.text
    q = await hub.get("hazards/stats", "coal", format="csv", quarter="2027Q1")
    assert 'filename="hazard-stats_2027Q1.csv"' in q.headers["content-disposition"]
