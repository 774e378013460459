"""A busy alarm replayed: each event of a resumed stream carried its alarm's tier and disposal
as of the event by a query per event over the alarm's earlier events, quadratic in one alarm's
events (an enterprise key's 10,000 comments on one alarm: a replay of minutes, helper-247). The
alarms of a page are now read once as of the page's start and carried forward; what is replayed
must stay the events as they went out live, from any resume point and page size."""

from __future__ import annotations

import random
from pathlib import Path

from test_stream_replay_asof import GAS_ALARM, heard_hub
from test_stream_resume import Feed, read, until

from alerts.alarmfeed import DISPOSAL_AFTER, AlarmFeed
from alerts.statedb import StateDB
from alerts.table import TIER_RANK

CHEM = {"Authorization": "Bearer k-chem"}


async def test_a_replay_of_a_busy_alarm_equals_its_live_events(mosquitto, tmp_path) -> None:
    """One alarm: raised yellow, commented on many times, verified, taken to red, disposed of,
    back to yellow, commented on again, cleared. Resumed from its start and from points within,
    every event replayed is the body the MQTT alarm topic carried live (peak_tier, disposal)."""
    async with heard_hub(mosquitto, tmp_path) as (api, mq, live):

        async def act(path: str, body: dict[str, str]) -> None:
            r = await api.post(f"/api/v1/alarms/{alarm}/{path}", json=body, headers=CHEM)
            assert r.status_code == 200, r.text

        async def comments(n: int, what: str) -> None:
            for i in range(n):
                await act("comment", {"note": f"{what} {i}"})

        chem = Feed(mq, "chem", "s", "d")
        await chem.send(30.0)  # raised, yellow, received
        await until(lambda: len(live) >= 1, "the raise on the alarm topic")
        (alarm,) = {int(str(b["alarm_id"])) for b in live.values()}
        await comments(25, "patrol")
        await act("disposal", {"step": "verify", "note": "a leak"})
        await comments(5, "valve")
        await chem.send(60.0)  # escalated, red
        await until(lambda: len(live) >= 33, "the escalation")
        await act("disposal", {"step": "dispose", "note": "valve shut"})
        await comments(10, "watch")
        await chem.send(30.0)  # back to yellow (its peak stays red)
        await until(lambda: len(live) >= 45, "the step down")
        await comments(10, "after")
        await chem.send(10.0)  # cleared
        await until(lambda: len(live) >= 56, "the clear")
        ids = sorted(live)
        assert len(ids) == 56
        kinds = [str(live[i]["kind"]) for i in ids]
        assert kinds.count("commented") == 50 and kinds[-1] == "cleared"
        assert {str(live[i]["peak_tier"]) for i in ids[32:]} == {"red"}
        assert [str(live[i]["disposal"]) for i in (ids[0], ids[26], ids[-1])] == [
            "received",
            "verified",
            "disposed",
        ]

        for start in (0, ids[0], ids[20], ids[32], ids[45], ids[-2]):
            again = read(api, "k-chem", f"&last_event_id={start}")
            want = [i for i in ids if i > start]
            await until(lambda: len(again.of("alarm")) >= len(want), f"the replay after {start}")  # noqa: B023
            await again.close()
            replayed = {b.id: b.data for b in again.of("alarm")}
            assert sorted(replayed) == want, start
            for event_id in want:
                assert replayed[event_id] == live[event_id], (start, event_id)


def _journal(db: StateDB, rnd: random.Random, events: int) -> list[tuple[int, str, str]]:
    """One alarm of chem and `events` journal events of it (kinds and tiers at random), with
    another tenant's between; its (id, peak_tier, disposal) at each, worked out here."""
    kinds = ["commented", "escalated", "acknowledged", *DISPOSAL_AFTER]
    out: list[tuple[int, str, str]] = []
    with db.transaction() as con:
        mine = db.insert_alarm(con, GAS_ALARM)
        theirs = db.insert_alarm(con, {**GAS_ALARM, "tenant": "other", "sensor": "gas-2"})
        peak, disposal = "", "received"
        for n in range(events):
            kind = "raised" if n == 0 else rnd.choice(kinds)
            tier = rnd.choice(["yellow", "orange", "red", "none"])
            event_id = db.insert_event(
                con, mine, kind, n + 1, n + 1, 1, "level1", tier, 1.0, "unack", "op", f"{n}"
            )
            assert event_id
            if not peak or TIER_RANK[tier] > TIER_RANK[peak]:
                peak = tier
            disposal = DISPOSAL_AFTER.get(kind, disposal)
            out.append((event_id, peak, disposal))
            if rnd.random() < 0.3:
                db.insert_event(
                    con, theirs, "commented", n + 1, n + 1, 1, "level1", "red", 1.0, "unack", "op"
                )
        con.execute("UPDATE alarms SET disposal = ? WHERE id = ?", (disposal, mine))
    return out


def test_pages_of_a_busy_alarm_carry_its_state_at_each_event(tmp_path: Path) -> None:
    """Pages of any size, from any id (the first, the middle of the alarm, the other tenant's
    ids between), carry the alarm's peak tier and disposal at each event."""
    db = StateDB(tmp_path / "state.db")
    feed = AlarmFeed(db.path)
    try:
        want = _journal(db, random.Random(248), 600)
        chem = frozenset({"chem"})
        last = feed.last_id()
        for start, size in ((0, 10_000), (0, 7), (want[100][0], 50), (want[300][0] + 1, 33)):
            got: list[tuple[int, str, str]] = []
            after = start
            while True:
                page = feed.replay(after, chem, size)
                got += [(f.event.event_id, f.peak_tier, f.event.disposal) for f in page.events]
                if not page.more:
                    break
                after = page.events[-1].event.event_id
            assert got == [w for w in want if w[0] > start], (start, size)
            assert page.last_id == last
        # the live follower's pages (every tenant): the same for chem's events
        every = [
            (f.event.event_id, f.peak_tier, f.event.disposal)
            for f in feed.follow(want[200][0], 10_000)
            if f.event.tenant == "chem"
        ]
        assert every == [w for w in want if w[0] > want[200][0]]
    finally:
        feed.close()
        db.close()


def test_a_quiet_tenants_newest_id_is_found_below_the_others_events(tmp_path: Path) -> None:
    """A reset tells a key of some tenants their newest journal id: found under thousands of
    the others' events too (no longer by walking the whole journal down, helper-247), and 0
    for a tenant without any."""
    db = StateDB(tmp_path / "state.db")
    feed = AlarmFeed(db.path)
    try:
        want = _journal(db, random.Random(7), 3)
        fields = {"tenant": "other", "site": "o", "device": "e", "sensor": "gas-2"}
        with db.transaction() as con:
            con.execute(
                "INSERT INTO alarms (tenant, site, device, sensor, rule, side, level, level_name,"
                " tier, action, state, started_ts, raised_at, peak_level, last_ts) VALUES"
                " (:tenant, :site, :device, :sensor, 'inline', 0, 1, 'l1', 'yellow', '',"
                " 'cleared', 1, 1, 1, 1)",
                fields,
            )
            (theirs,) = con.execute("SELECT MAX(id) FROM alarms").fetchone()
            con.executemany(
                "INSERT INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, tier,"
                " actor) VALUES (?, 'commented', ?, ?, 1, 'l1', 'yellow', 'op')",
                [(theirs, n, n) for n in range(5_000)],
            )
        last = feed.last_id()
        ahead = feed.replay(last + 100, frozenset({"chem"}), 10)
        assert (ahead.last_id, ahead.own_last) == (last, want[-1][0])
        many = feed.replay(0, frozenset({"chem", "nobody"}), 1)
        assert many.more and many.own_last == want[-1][0]
        assert feed.replay(last + 1, frozenset({"nobody"}), 10).own_last == 0
        assert feed.replay(last + 1, frozenset({"other"}), 10).own_last == last
    finally:
        feed.close()
        db.close()
