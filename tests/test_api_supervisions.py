"""The centre's 督办 the centre can follow up, over the app and its state database: `GET
/api/v1/supervisions` (status, tenant, since/until, limit/before) and `/supervisions/{id}`,
an enterprise's key seeing its own tenant's only (another's is 404); the alarm CSV's
supervision columns; the handling report's counts per tenant (given, answered in time, late,
overdue, undelivered, open)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from test_api_alarms import CHEM, COAL, Hub, now_ms, opened
from test_supervision_state import HOUR, answer, receipt, supervise

from alerts.supervisionanswers import record_answer
from alerts.supervisionstate import SupervisionDeadlines

from e2e_helpers import ROOT


async def _five(hub: Hub, t: int) -> tuple[int, list[int]]:
    """A tanker's alarm with five 督办: answered in time, overdue, undelivered, open, and
    answered after it was found overdue."""
    alarm = hub.raise_alarm("tanker-01.speed", 90)
    in_time = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)
    record_answer(hub.db, hub.desk, answer(in_time, 1), t - 2 * HOUR + 9)
    overdue = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)
    lost = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)
    record_answer(hub.db, hub.desk, receipt(lost, "dropped"), t - 2 * HOUR + 5)
    ahead = supervise(hub, alarm, t + HOUR, t)
    late = supervise(hub, alarm, t - HOUR, t - 2 * HOUR)
    SupervisionDeadlines(hub.db, hub.desk).step(t)
    record_answer(hub.db, hub.desk, answer(late, 3), t + 1)
    return alarm, [in_time, overdue, lost, ahead, late]


async def _ids(hub: Hub, who: str = "op", **params: Any) -> list[int]:
    r = await hub.get("/supervisions", who, params=params)
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()]


async def test_the_centre_lists_the_supervisions_to_chase(tmp_path: Path) -> None:
    async with opened(tmp_path) as hub:
        t = now_ms()
        alarm, (in_time, overdue, lost, ahead, late) = await _five(hub, t)
        assert await _ids(hub) == [late, ahead, lost, overdue, in_time]  # newest first
        assert await _ids(hub, status="overdue") == [overdue]
        assert await _ids(hub, status="open") == [ahead]
        assert await _ids(hub, status="answered") == [late, in_time]
        assert await _ids(hub, status="undelivered") == [lost]
        assert await _ids(hub, limit=2) == [late, ahead]
        assert await _ids(hub, limit=2, before=ahead) == [lost, overdue]
        assert await _ids(hub, since=t - HOUR) == [ahead]
        assert await _ids(hub, until=t - HOUR) == [late, lost, overdue, in_time]
        assert await _ids(hub, tenant=CHEM, status="overdue") == [overdue]
        assert await _ids(hub, tenant=COAL) == []
        r = await hub.get("/supervisions", params={"status": "late"})
        assert r.status_code == 422, r.text

        one = (await hub.get(f"/supervisions/{overdue}")).json()
        assert one == {
            "id": overdue, "alarm_id": alarm, "tenant": CHEM, "tenant_name": "",
            "vehicle": "tanker-01",
            "plate": "苏AD1234", "deadline": t - HOUR, "created_at": t - 2 * HOUR, "actor": "op",
            "status": "overdue", "late": False, "platform": None, "receipt": None,
            "receipt_at": None, "answered_at": None, "result": None, "result_text": None,
            "result_at": None, "answer_platform": None, "overdue_at": t,
        }  # fmt: skip
        got = (await hub.get(f"/supervisions/{late}")).json()
        assert (got["status"], got["late"], got["overdue_at"], got["answered_at"]) == (
            "answered", True, t, t + 1,
        )  # fmt: skip
        assert (got["result"], got["result_text"]) == (3, "将来处理")
        assert (await hub.get(f"/supervisions/{lost}")).json()["receipt"] == "dropped"
        assert (await hub.get("/supervisions/999999")).status_code == 404


async def test_an_enterprise_sees_what_the_centre_asked_of_it_alone(tmp_path: Path) -> None:
    async with opened(tmp_path) as hub:
        t = now_ms()
        _, (in_time, overdue, lost, ahead, late) = await _five(hub, t)
        assert await _ids(hub, "chem") == [late, ahead, lost, overdue, in_time]
        assert await _ids(hub, "chem", status="overdue") == [overdue]
        assert (await hub.get(f"/supervisions/{overdue}", "chem")).status_code == 200
        assert await _ids(hub, "coal") == []
        r = await hub.get(f"/supervisions/{overdue}", "coal")
        assert r.status_code == 404 and "supervision" in r.json()["detail"], r.text
        r = await hub.get("/supervisions", "coal", params={"tenant": CHEM})
        assert r.status_code == 404, r.text


async def test_the_csv_and_the_handling_report_count_the_supervisions(tmp_path: Path) -> None:
    async with opened(tmp_path) as hub:
        t = now_ms()
        coal = hub.raise_alarm()
        alarm, (*_, late) = await _five(hub, t)
        r = await hub.get("/alarms", params={"format": "csv"})
        assert r.status_code == 200, r.text
        rows = {row["id"]: row for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))}
        cols = ("supervisions", "last_supervision_id", "last_supervision_status",
                "last_supervision_late")  # fmt: skip
        assert [rows[str(alarm)][c] for c in cols] == ["5", str(late), "answered", "true"]
        assert [rows[str(coal)][c] for c in cols] == ["0", "", "", ""]

        report = (await hub.get("/alarm-quality/handling")).json()
        by_tenant = {x["tenant"]: x["supervisions"] for x in report["tenants"]}
        counts = {"given": 5, "answered_in_time": 1, "answered_late": 1, "overdue": 1,
                  "undelivered": 1, "open": 1}  # fmt: skip
        assert by_tenant == {CHEM: counts, COAL: dict.fromkeys(counts, 0)}
        assert report["total"]["supervisions"] == counts
        chem = (await hub.get("/alarm-quality/handling", "chem")).json()
        assert [x["supervisions"] for x in chem["tenants"]] == [counts]


async def test_the_docs_example_is_what_the_route_answers(tmp_path: Path) -> None:
    """docs/api.md's example of a supervision has the route's fields, of the route's types."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("### Supervisions (报警督办)", 1)[1]
    example = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    async with opened(tmp_path) as hub:
        t = now_ms()
        _, (_, overdue, *_) = await _five(hub, t)
        record_answer(hub.db, hub.desk, receipt(overdue, "sent", "main"), t - HOUR - 9)
        got = (await hub.get(f"/supervisions/{overdue}")).json()
    assert list(got) == list(example)
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in example.items()}
    assert got["status"] == example["status"] == "overdue"
