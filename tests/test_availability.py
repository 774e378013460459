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
    found = availability(db, reg, None, start, end)
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
    assert availability(db, reg, ["acme-chem"], start, end).sites == ()
    with pytest.raises(ValueError, match="must end after"):
        availability(db, reg, None, end, start)
    db.close()
