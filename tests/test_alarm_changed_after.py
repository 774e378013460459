"""A nightly reconciliation lists every alarm touched since its last run: `changed_after=<event
id>` selects the alarms with a journal event above the id, whenever they started (`start=`
filters on the start: an alarm raised yesterday and acknowledged today was not listed,
helper-241), and `X-Changed-Up-To` is the cursor of the next run, of the caller's tenants."""

from __future__ import annotations

import sqlite3
from typing import Any

from test_api_alarms import Hub, opened

from alerts.alarmquery import AlarmFilter


async def _listed(hub: Hub, who: str, **params: Any) -> tuple[list[int], int]:
    r = await hub.get("/alarms", who, params=params)
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()], int(r.headers["X-Changed-Up-To"])


async def test_a_reconciliation_finds_an_old_alarm_changed_since_its_last_run(tmp_path) -> None:
    async with opened(tmp_path) as hub:
        old = hub.raise_alarm("ch4-t1")
        other = hub.raise_alarm("ch4-t2", 2.0)
        theirs = hub.raise_alarm("tanker-01.speed", 90)
        ids, cursor = await _listed(hub, "coal", changed_after=0)
        assert ids == [other, old]
        # the cursor is coal's newest event, not the hub's (chem's raise came after)
        coal_events = [e["id"] for a in (old, other) for e in (await hub.alarm(a))["events"]]
        assert cursor == max(coal_events)
        started_after = (await hub.alarm(other))["started_ts"] + 1

        # overnight: the old alarm is acknowledged, chem's too; nothing else of coal's
        r = await hub.post(f"/alarms/{old}/acknowledge", {"note": "seen"}, "coal")
        assert r.status_code == 200, r.text
        r = await hub.post(f"/alarms/{theirs}/acknowledge", {"note": "seen"}, "chem")
        assert r.status_code == 200, r.text
        # the start filter misses it: it started before the window
        assert await hub.ids("coal", start=started_after) == []
        ids, nxt = await _listed(hub, "coal", changed_after=cursor)
        assert ids == [old]
        assert nxt == max(e["id"] for e in (await hub.alarm(old))["events"]) > cursor
        # nothing since: the same cursor back, an empty list
        assert await _listed(hub, "coal", changed_after=nxt) == ([], nxt)
        # a key of every tenant: both, paged with before=
        ids, everyone = await _listed(hub, "op", changed_after=cursor, limit=1)
        assert ids == [theirs] and everyone > nxt
        ids, _ = await _listed(hub, "op", changed_after=cursor, limit=1, before=theirs)
        assert ids == [old]
        # with other filters, and as CSV
        r = await hub.get("/alarms", "coal", params={"changed_after": cursor, "format": "csv"})
        assert r.status_code == 200 and r.headers["X-Changed-Up-To"] == str(nxt)
        assert len(r.text.strip().splitlines()) == 2  # the header and the old alarm
        r = await hub.get("/alarms", "coal", params={"changed_after": -1})
        assert r.status_code == 422


def test_the_changed_filter_reads_the_newest_events_not_every_alarm(tmp_path) -> None:
    from alerts.statedb import StateDB

    db = StateDB(tmp_path / "state.db")
    try:
        sql, params = AlarmFilter(["north-coal"], changed_after=10).select()
        con = sqlite3.connect(db.path)
        try:
            plan = [r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {sql}", [*params, 100])]
        finally:
            con.close()
        assert any("alarm_events USING INTEGER PRIMARY KEY (rowid>?)" in p for p in plan), plan
        assert not any(p.startswith("SCAN alarms") for p in plan), plan
    finally:
        db.close()
