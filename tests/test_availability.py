"""Data availability per site and tenant (alerts.availability): the share of a month in which
the points had data, from their no-data alarms and their device's and gateway's."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.alarmevent import device_alarm_id
from alerts.availability import availability
from alerts.gateways import gateway_alarm_id
from alerts.statedb import StateDB
from alerts.table import ABOVE, NO_DATA

from e2e_helpers import mine_registry

DAY = 86_400_000
T0 = 1_796_000_000_000


def alarm(db: StateDB, sensor: str, side: int, start: int, end: int | None) -> None:
    with db.transaction() as con:
        db.insert_alarm(
            con,
            {
                "tenant": "north-coal",
                "site": "face-1301",
                "device": "kj-sub-3",
                "sensor": sensor,
                "rule": "r",
                "side": side,
                "level": 1,
                "level_name": "no_data",
                "tier": "yellow",
                "action": "",
                "state": "active" if end is None else "cleared",
                "started_ts": start,
                "ended_ts": end,
                "raised_at": start,
                "cleared_at": end,
                "peak_level": 1,
                "last_ts": start,
                "value": None,
                "acked": 0,
                "isa_state": "unack",
                "disposal": "received",
            },
        )


def watch(db: StateDB, start: int, end: int) -> None:
    with db.transaction() as con:
        con.execute("INSERT INTO hub_watch (start_ms, end_ms) VALUES (?, ?)", (start, end))


def test_only_the_time_the_hub_watched_counts(tmp_path: Path) -> None:
    """helper-133 asked for the month before the hub existed, the next month and the current
    one (13 minutes watched): 100 % each time. The hub's absences count neither way, the future
    not at all, and a range never watched has no rate."""
    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    # watched for days 0-4, away days 4-6 (the gateway's offline alarm open across it), back
    watch(db, T0, T0 + 4 * DAY)
    watch(db, T0 + 6 * DAY, T0 + 8 * DAY)
    alarm(db, gateway_alarm_id("north-coal", "face-1301", "gw1"), NO_DATA, T0 + 3 * DAY,
          T0 + 7 * DAY)  # fmt: skip
    now = T0 + 8 * DAY
    found = availability(db, reg, None, T0, T0 + 30 * DAY, now_ms=now)
    assert found.observed_s == 6 * DAY / 1000  # not the absence, not the future
    (site,) = found.sites
    assert site.offline_s == pytest.approx(4 * 2 * DAY / 1000)  # days 3-4 and 6-7, 4 points
    assert site.online_rate == pytest.approx(1 - 2 / 6)
    (tenant,) = found.tenants
    assert tenant.online_rate == pytest.approx(site.online_rate)
    for start, end in ((T0 - 30 * DAY, T0), (now, now + 30 * DAY), (T0 + 4 * DAY, T0 + 6 * DAY)):
        nothing = availability(db, reg, None, start, end, now_ms=now)
        assert nothing.observed_s == 0
        assert [s.online_rate for s in nothing.sites] == [None]
        assert [t.online_rate for t in nothing.tenants] == [None]
    db.close()


def test_the_hubs_ticks_record_its_watch_and_its_absences(tmp_path: Path) -> None:
    from alerts.hubwatch import EVERY_MS, GAP_MS, HubWatch, watched_spans

    db = StateDB(tmp_path / "state.db")
    w = HubWatch(db)
    ticks = [T0 + k * 1000 for k in range(200)]  # a tick a second for 200 s
    ticks += [T0 + 199_000 + GAP_MS + 5000 + k * 1000 for k in range(100)]  # after an outage
    for t in ticks:
        if w.due(t):
            w.seen(t)
    spans = watched_spans(db, T0 - DAY, T0 + DAY)
    assert len(spans) == 2
    (a0, b0), (a1, b1) = spans
    assert a0 == T0 and ticks[199] - EVERY_MS < b0 <= ticks[199]
    assert a1 == ticks[200] and ticks[-1] - EVERY_MS < b1 <= ticks[-1]
    # a restart is a new span, however soon
    again = HubWatch(db)
    for t in (ticks[-1] + 5000, ticks[-1] + 5000 + EVERY_MS):
        again.seen(t)
    assert watched_spans(db, T0 - DAY, T0 + DAY)[1:] == [(a1, b1), (t - EVERY_MS, t)]
    db.close()


def test_an_upgraded_state_database_watched_since_its_first_record(tmp_path: Path) -> None:
    """A file of schema 9 gets one span from its first alarm to the upgrade: the months before
    keep the figures they had (the hub was assumed watching then)."""
    import sqlite3
    import time

    from alerts.hubwatch import watched_spans

    db = StateDB(tmp_path / "state.db")
    alarm(db, "ch4-t1", NO_DATA, T0, T0 + DAY)
    db.close()
    con = sqlite3.connect(tmp_path / "state.db")
    con.executescript("DROP TABLE hub_watch; PRAGMA user_version = 9;")
    con.close()
    before = time.time_ns() // 1_000_000
    db = StateDB(tmp_path / "state.db")
    ((start, end),) = watched_spans(db, 0, 2**62)
    assert start == T0 and before - 1000 <= end <= time.time_ns() // 1_000_000 + 1000
    db.close()
    fresh = StateDB(tmp_path / "new.db")
    assert watched_spans(fresh, 0, 2**62) == []  # nothing recorded: nothing assumed
    fresh.close()


def test_availability_counts_the_points_time_without_data_once(tmp_path: Path) -> None:
    """Of a 10-day range: ch4-t1 without data for 1 day (two overlapping no-data alarms), the
    whole device for half a day (its comm loss: every point), the gateway offline from the last
    day on and still (an open alarm: to the range's end); an `above` alarm is not a gap, nor
    are gaps outside the range. The feed (display-only: no levels, no no_data_s, no one's
    feedback) does not count, nor do vehicles."""
    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    start, end = T0, T0 + 10 * DAY
    alarm(db, "ch4-t1", NO_DATA, T0 + DAY, T0 + DAY + DAY // 2)
    alarm(db, "ch4-t1", NO_DATA, T0 + DAY + DAY // 4, T0 + 2 * DAY)  # overlaps the first
    alarm(db, "ch4-t1", ABOVE, T0, T0 + 5 * DAY)  # not a gap
    alarm(db, "ch4-t0", NO_DATA, T0 - 5 * DAY, T0 - DAY)  # before the range
    alarm(db, device_alarm_id("north-coal", "face-1301", "kj-sub-3"), NO_DATA, T0 + 3 * DAY,
          T0 + 3 * DAY + DAY // 2)  # fmt: skip
    alarm(db, gateway_alarm_id("north-coal", "face-1301", "gw1"), NO_DATA, T0 + 9 * DAY, None)
    watch(db, T0 - 30 * DAY, T0 + 20 * DAY)  # the hub watched all along
    found = availability(db, reg, None, start, end, now_ms=end + DAY)
    assert found.observed_s == 10 * DAY / 1000
    (site,) = found.sites
    assert (site.tenant, site.site, site.points) == ("north-coal", "face-1301", 4)
    # every point: 1.5 days (device, gateway); ch4-t1: 1 day more (the union of its two)
    day_s = DAY / 1000
    assert site.offline_s == pytest.approx(4 * 1.5 * day_s + day_s)
    assert site.online_rate == pytest.approx(1 - (4 * 1.5 + 1) / 40)
    assert site.worst[0].sensor == "ch4-t1" and site.worst[0].offline_s == 2.5 * day_s
    (tenant,) = found.tenants  # acme-chem has vehicles only: no points
    assert (tenant.tenant, tenant.points) == ("north-coal", 4)
    assert tenant.online_rate == pytest.approx(site.online_rate)
    # another tenant's key: nothing of north-coal
    assert availability(db, reg, ["acme-chem"], start, end, now_ms=end).sites == ()
    with pytest.raises(ValueError, match="must end after"):
        availability(db, reg, None, end, start)
    db.close()


async def test_the_dispatchers_clock_records_the_watch(tmp_path: Path) -> None:
    """The hub's tick (ingest's clock, every second while it judges) is what records it."""
    from alerts.hubwatch import watched_spans
    from ingest.dispatch import Dispatcher
    from ingest.metrics import Metrics
    from ingest.store.sqlite import SqliteStore

    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics())
        for k in range(61):
            await d.tick(T0 + k * 1000)
        assert watched_spans(db, 0, 2**62) == [(T0, T0 + 60_000)]
    finally:
        await store.close()
        db.close()
