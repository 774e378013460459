"""Alarm quality after EEMUA 191 (`alerts.alarmstats`, `api.alarmstats`): alarms per 10 minutes
and floods, chattering points, standing alarms, bad actors; tenant scoping, auth and ranges.

The alarms come through the real `AlarmBook` into a real state database: process alarms from
transitions (above, raised and cleared), device comm-loss alarms from comm-loss readings through
`evaluate`. Every alarm arrives two hours late (a replayed spool): the counts follow event time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import alarmstats as stats
from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, Readings, evaluate
from alerts.state import Transitions
from alerts.statedb import StateDB
from alerts.table import ABOVE, compile_table
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from hazardhub.settings import load_profiles
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

S = 1000
T0 = 1_700_000_400_000  # on the 10-minute grid
NORTH, SOUTH = "north-coal", "south-coal"
DEVICE = "device:north-coal/face-1302/kj-sub-4"

CONFIG = """
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1502, unit: 1}
            sensors:
              - {id: ch4-t0, point: ch4_t0, kind: methane, rule: coal-methane.upper-corner-t0}
              - {id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}
              - {id: ch4-t2, point: ch4_t2, kind: methane, rule: coal-methane.return-t2}
              - {id: co, point: co, kind: co, rule: coal-gas.co}
      - id: face-1302
        kind: mine
        devices:
          - id: kj-sub-4
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1503, unit: 1}
            sensors:
              - {id: b-ch4, point: ch4_t0, kind: methane, rule: coal-methane.upper-corner-t0}
  - id: south-coal
    sites:
      - id: face-2201
        kind: mine
        devices:
          - id: kj-sub-9
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1504, unit: 1}
            sensors:
              - {id: s-ch4, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}
notify: {standing_s: 3600}
"""


@functools.cache
def registry() -> Registry:
    config = parse_document(CONFIG, HubConfig, "alarm-stats.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "alarm-stats.yaml")


def plant(db: StateDB, reg: Registry, t0: int) -> None:
    """The alarm history, seconds after t0:

    face-1301 (north): ch4-t1 raised at 10, 30, 60 (chattering), ch4-t2 at 100, 175, 250 (not),
    ch4-t0 at 300, 370, 440, 510 and 700 (still active), co at 320, 400: 12 in the first 10
    minutes (a flood), 1 in the next. face-1302 (north): its one sensor loses communication at
    900, 1000 and 1100 (still lost), back at 910 and 1010: each loss is a no-data alarm of
    b-ch4 and a comm-loss alarm of the device. face-2201 (south): s-ch4 at 20, 30, 40 and 800
    (still active).
    """
    table = compile_table(reg.sensors)
    book = AlarmBook(db, reg, table)
    arrival = t0 + 7200 * S  # two hours late, all of it

    def above(sensor: str, raises: list[int], keep_last: bool = False) -> None:
        rows: list[tuple[int, int, int]] = []
        for n, at in enumerate(raises):
            rows.append((t0 + at * S, 0, 1))
            if not (keep_last and n == len(raises) - 1):
                rows.append((t0 + (at + 5) * S, 1, 0))
        i = reg.sensor(sensor).index
        tr = Transitions(
            np.full(len(rows), i, np.int32),
            np.array([r[0] for r in rows], np.int64),
            np.full(len(rows), 1.5),
            np.full(len(rows), ABOVE, np.uint8),
            np.array([r[1] for r in rows], np.int8),
            np.array([r[2] for r in rows], np.int8),
        )
        events = book.apply(tr, arrival)
        assert [e.kind for e in events].count("raised") == len(raises)

    above("ch4-t1", [10, 30, 60])
    above("ch4-t2", [100, 175, 250])
    above("ch4-t0", [300, 370, 440, 510, 700], keep_last=True)
    above("co", [320, 400])
    above("s-ch4", [20, 30, 40, 800], keep_last=True)

    state = CoreState.empty(len(reg.sensors))
    b = reg.sensor("b-ch4").index
    for at, value, quality in (
        (900, float("nan"), Quality.COMM_LOSS),
        (910, 0.2, Quality.GOOD),
        (1000, float("nan"), Quality.COMM_LOSS),
        (1010, 0.2, Quality.GOOD),
        (1100, float("nan"), Quality.COMM_LOSS),
    ):
        ts = t0 + at * S
        readings = Readings(
            np.array([b], np.int32),
            np.array([ts], np.int64),
            np.array([value]),
            np.array([int(quality)], np.uint8),
        )
        state, tr, _ = evaluate(table, readings, state, ts)
        events = book.apply(tr, arrival, state)
        assert [(e.sensor, e.kind) for e in events] == [
            ("b-ch4", "raised" if quality else "cleared"),
            (DEVICE, "raised" if quality else "cleared"),
        ]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateDB]:
    """One history for the module's reading tests."""
    found = StateDB(tmp_path_factory.mktemp("stats") / "state.db")
    plant(found, registry(), T0)
    yield found
    found.close()


HOUR = (T0, T0 + 3600 * S)


# the computations ----------------------------------------------------------------------------
def test_rate_per_site_and_10_minutes_by_event_time_with_floods(db: StateDB) -> None:
    rate = stats.alarm_rate(db, [NORTH], *HOUR)
    assert (rate.periods, rate.flood_above, rate.activations) == (6, 10, 19)
    one, two = rate.sites
    assert (one.tenant, one.site, one.activations, one.peak, one.flood_periods) == (
        NORTH,
        "face-1301",
        13,
        12,
        1,
    )
    assert one.mean == pytest.approx(13 / 6)
    assert one.buckets == (
        stats.RateBucket(T0, 12, True),
        stats.RateBucket(T0 + 600 * S, 1, False),
    )
    # the device's comm-loss alarms count beside its sensor's no-data alarms
    assert (two.site, two.activations, two.peak, two.flood_periods) == ("face-1302", 6, 6, 0)
    assert two.buckets == (stats.RateBucket(T0 + 600 * S, 6, False),)
    # the flood threshold is "more than"
    assert stats.alarm_rate(db, [NORTH], *HOUR, flood_above=11).sites[0].flood_periods == 1
    assert stats.alarm_rate(db, [NORTH], *HOUR, flood_above=12).sites[0].flood_periods == 0
    # one site; every tenant; a range that is not on the grid touches the periods it overlaps
    (only,) = stats.alarm_rate(db, [NORTH], *HOUR, site="face-1302").sites
    assert only.site == "face-1302"
    every = stats.alarm_rate(db, None, *HOUR)
    assert [(s.tenant, s.site, s.activations) for s in every.sites] == [
        (NORTH, "face-1301", 13),
        (NORTH, "face-1302", 6),
        (SOUTH, "face-2201", 4),
    ]
    part = stats.alarm_rate(db, None, T0 + 30 * S, T0 + 601 * S)
    # from 30 s: ch4-t1's first raise is out, so are south's at 20 s and everything after 600 s
    assert (part.periods, part.activations) == (2, 11 + 2)
    assert [(s.site, s.buckets) for s in part.sites] == [
        ("face-1301", (stats.RateBucket(T0, 11, True),)),
        ("face-2201", (stats.RateBucket(T0, 2, False),)),
    ]
    assert stats.alarm_rate(db, [], *HOUR).sites == ()


def test_chattering_points_in_a_sliding_60_s_window(db: StateDB) -> None:
    found = stats.chattering(db, [NORTH], *HOUR)
    (chatter,) = found.points  # ch4-t2 (3 in 150 s) and ch4-t0 (70 s apart) do not chatter
    assert chatter == stats.Chatter(
        stats.AlarmPoint(NORTH, "ch4-t1", "coal-methane.face-t1", ABOVE, "face-1301", "kj-sub-3"),
        activations=3,
        worst=3,
        worst_start=T0 + 10 * S,
    )
    assert chatter.point.kind == "above"
    assert (found.window_ms, found.min_count) == (60_000, 3)
    # both tenants: the worst first, then the most activations
    both = stats.chattering(db, None, *HOUR)
    assert [(c.point.sensor, c.activations, c.worst, c.worst_start) for c in both.points] == [
        ("s-ch4", 4, 3, T0 + 20 * S),
        ("ch4-t1", 3, 3, T0 + 10 * S),
    ]
    # only the activations in the range count: from 30 s ch4-t1 has two left
    assert stats.chattering(db, [NORTH], T0 + 30 * S, HOUR[1]).points == ()
    # a window of 150 s catches ch4-t2 (3 in 150 s: both ends count) and ch4-t0 (3 in 140 s)
    wide = stats.chattering(db, [NORTH], *HOUR, window_ms=150_000)
    assert [(c.point.sensor, c.activations, c.worst) for c in wide.points] == [
        ("ch4-t0", 5, 3),
        ("ch4-t1", 3, 3),
        ("ch4-t2", 3, 3),
    ]
    assert len(stats.chattering(db, [NORTH], *HOUR, window_ms=149_999).points) == 2
    assert stats.chattering(db, [SOUTH], *HOUR, window_ms=19_999).points == ()
    assert stats.chattering(db, [SOUTH], *HOUR, window_ms=20_000).points[0].worst == 3


def _worst_by_hand(groups: list[list[int]], window: int) -> tuple[list[int], list[int]]:
    worst, start = [], []
    for ts in groups:
        counts = [sum(1 for u in ts if t <= u <= t + window) for t in ts]
        best = max(counts)
        worst.append(best)
        start.append(ts[counts.index(best)])
    return worst, start


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 500), min_size=1, max_size=12), min_size=1, max_size=6),
    st.integers(0, 120),
)
def test_worst_windows_agree_with_counting_by_hand(groups: list[list[int]], window: int) -> None:
    groups = [sorted(g) for g in groups]
    group = np.array([g for g, ts in enumerate(groups) for _ in ts], np.int64)
    ts = np.array([t for g in groups for t in g], np.int64) + T0
    worst, start = stats.worst_windows(group, ts, window)
    want_worst, want_start = _worst_by_hand(groups, window)
    assert worst.tolist() == want_worst
    assert (start - T0).tolist() == want_start


def test_standing_alarms_by_age_with_comm_loss(db: StateDB) -> None:
    now = T0 + 7900 * S
    found = stats.standing_alarms(db, [NORTH], now, standing_s=3600)
    assert [(a.point.sensor, a.point.rule, a.point.kind, a.age_ms) for a in found.alarms] == [
        ("ch4-t0", "coal-methane.upper-corner-t0", "above", 7200 * S),
        ("b-ch4", "coal-methane.upper-corner-t0", "no_data", 6800 * S),
        (DEVICE, "comm_loss", "no_data", 6800 * S),
    ]
    device = found.alarms[2]
    assert (device.point.site, device.point.device, device.level_name, device.tier) == (
        "face-1302",
        "kj-sub-4",
        "device_comm_loss",
        "orange",
    )
    assert (device.isa_state, device.started_ts) == ("unack", T0 + 1100 * S)
    assert found.standing_ms == 3_600_000
    # "longer than": an alarm exactly that old is not standing yet
    older = stats.standing_alarms(db, [NORTH], now, standing_s=7199)
    assert [a.point.sensor for a in older.alarms] == ["ch4-t0"]
    assert stats.standing_alarms(db, [NORTH], now, standing_s=7200).alarms == ()
    every = stats.standing_alarms(db, None, now, standing_s=3600)
    assert [a.point.sensor for a in every.alarms] == ["ch4-t0", "s-ch4", "b-ch4", DEVICE]
    assert stats.standing_alarms(db, [SOUTH], now, standing_s=3600).alarms[0].age_ms == 7100 * S


def test_bad_actors_ranked_with_their_share(db: StateDB) -> None:
    found = stats.bad_actors(db, [NORTH], *HOUR)
    assert found.activations == 19
    assert [(b.point.sensor, b.point.kind, b.activations) for b in found.points] == [
        ("ch4-t0", "above", 5),
        ("b-ch4", "no_data", 3),  # ties: by tenant, sensor, rule, kind
        ("ch4-t1", "above", 3),
        ("ch4-t2", "above", 3),
        (DEVICE, "no_data", 3),
        ("co", "above", 2),
    ]
    assert [b.share for b in found.points] == [5 / 19, 3 / 19, 3 / 19, 3 / 19, 3 / 19, 2 / 19]
    assert found.share == pytest.approx(1.0)
    top = stats.bad_actors(db, [NORTH], *HOUR, limit=3)
    assert (top.activations, [b.point.sensor for b in top.points]) == (
        19,
        ["ch4-t0", "b-ch4", "ch4-t1"],
    )
    assert top.share == pytest.approx(11 / 19)
    # after the first 10 minutes: the comm losses lead
    late = stats.bad_actors(db, None, T0 + 600 * S, HOUR[1])
    assert [(b.point.tenant, b.point.sensor, b.activations) for b in late.points] == [
        (NORTH, "b-ch4", 3),
        (NORTH, DEVICE, 3),
        (NORTH, "ch4-t0", 1),
        (SOUTH, "s-ch4", 1),
    ]
    assert stats.bad_actors(db, [SOUTH, "nobody"], *HOUR).activations == 4
    assert stats.bad_actors(db, [], *HOUR) == stats.BadActors(*HOUR, 0, 0.0, ())
    with pytest.raises(ValueError, match="end after"):
        stats.bad_actors(db, None, T0, T0)


# the API -------------------------------------------------------------------------------------
def _key(name: str, role: str, *tenants: str) -> ApiKeySpec:
    return ApiKeySpec(name=name, sha256=hash_key(f"k-{name}"), role=role, tenants=tenants)


KEYS = [
    _key("admin", "admin"),
    _key("north", "enterprise", NORTH),
    _key("south", "enterprise", SOUTH),
    _key("viewer", "viewer", NORTH),
]
ROUTES = ("rate", "chattering", "standing", "bad-actors", "handling")


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{who}"}


# the same history today: it starts 3 h before the last 10-minute mark
NOW_T0 = (time.time_ns() // 1_000_000 // 600_000) * 600_000 - 3 * 3600 * S
SPAN = {"start": NOW_T0, "end": NOW_T0 + 3600 * S}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One app over one history for the module (the routes only read); its time-series store is
    never opened: these routes do not use it."""
    folder = tmp_path_factory.mktemp("api")
    db = StateDB(folder / "state.db")
    plant(db, registry(), NOW_T0)
    with db.transaction() as con:  # the hub watched the whole history (alerts.hubwatch)
        con.execute("INSERT INTO hub_watch VALUES (?, ?)", (NOW_T0 - 86_400_000, NOW_T0 + 7200 * S))
    store = SqliteStore(registry(), folder / "ts.db")
    yield create_app(AppContext(registry(), store, db, Metrics(), KeyRing(KEYS)))
    db.close()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client


async def get(api: httpx.AsyncClient, route: str, who: str, **params: object) -> dict:
    r = await api.get(f"/api/v1/alarm-quality/{route}", params=params, headers=auth(who))
    assert r.status_code == 200, r.text
    return r.json()


async def test_rate_and_floods_over_http(api: httpx.AsyncClient) -> None:
    rate = await get(api, "rate", "north", **SPAN)
    assert (rate["periods"], rate["flood"], rate["activations"], rate["bucket_ms"]) == (
        6,
        10,
        19,
        600_000,
    )
    assert [
        (s["site"], s["activations"], s["peak"], s["flood_periods"]) for s in rate["sites"]
    ] == [
        ("face-1301", 13, 12, 1),
        ("face-1302", 6, 6, 0),
    ]
    assert rate["sites"][0]["buckets"] == [
        {"start": NOW_T0, "count": 12, "flood": True},
        {"start": NOW_T0 + 600 * S, "count": 1, "flood": False},
    ]
    assert rate["sites"][0]["mean_per_10min"] == pytest.approx(13 / 6)
    calm = await get(api, "rate", "north", flood=12, site="face-1301", **SPAN)
    assert [(s["site"], s["flood_periods"]) for s in calm["sites"]] == [("face-1301", 0)]
    # the default range is the last 24 hours
    assert (await get(api, "rate", "north"))["activations"] == 19


async def test_every_route_is_scoped_to_the_callers_tenants(api: httpx.AsyncClient) -> None:
    north = await get(api, "chattering", "north", **SPAN)
    assert [p["sensor"] for p in north["points"]] == ["ch4-t1"]
    assert north["points"][0] == {
        "tenant": NORTH,
        "site": "face-1301",
        "device": "kj-sub-3",
        "sensor": "ch4-t1",
        "rule": "coal-methane.face-t1",
        "side": "above",
        "activations": 3,
        "worst": 3,
        "worst_start": NOW_T0 + 10 * S,
    }
    assert north["window_s"] == 60
    standing = await get(api, "standing", "north")  # notify.standing_s: 3600
    assert standing["standing_s"] == 3600
    assert [(a["sensor"], a["side"]) for a in standing["alarms"]] == [
        ("ch4-t0", "above"),
        ("b-ch4", "no_data"),
        (DEVICE, "no_data"),
    ]
    assert all(a["age_s"] > 3600 for a in standing["alarms"])
    assert (await get(api, "standing", "north", standing_s=86400))["alarms"] == []
    actors = await get(api, "bad-actors", "north", limit=2, **SPAN)
    assert (actors["activations"], actors["share"]) == (19, pytest.approx(8 / 19))
    assert [(p["sensor"], p["activations"]) for p in actors["points"]] == [
        ("ch4-t0", 5),
        ("b-ch4", 3),
    ]

    # the other tenant's key sees none of that, only its own
    # (the standing alarms are the present state: a range there is refused, 422)
    south = {
        route: await get(api, route, "south", **({} if route == "standing" else SPAN))
        for route in ROUTES
    }
    assert [s["site"] for s in south["rate"]["sites"]] == ["face-2201"]
    assert south["rate"]["activations"] == 4
    assert [p["sensor"] for p in south["chattering"]["points"]] == ["s-ch4"]
    assert [a["sensor"] for a in south["standing"]["alarms"]] == ["s-ch4"]
    assert [(p["tenant"], p["sensor"]) for p in south["bad-actors"]["points"]] == [(SOUTH, "s-ch4")]
    # `tenant` narrows within the caller's tenants, never beyond: another's is 404, as if it
    # did not exist
    for route in ("rate", "chattering", "bad-actors"):
        narrowed = await get(api, route, "admin", tenant=NORTH, **SPAN)
        assert narrowed == await get(api, route, "north", **SPAN)
        r = await api.get(
            f"/api/v1/alarm-quality/{route}",
            params={"tenant": NORTH, **SPAN},
            headers=auth("south"),
        )
        assert r.status_code == 404, r.text
    narrowed = await get(api, "standing", "admin", tenant=NORTH)
    ids = [a["alarm_id"] for a in standing["alarms"]]
    assert [a["alarm_id"] for a in narrowed["alarms"]] == ids
    everyone = await get(api, "bad-actors", "admin", **SPAN)
    assert everyone["activations"] == 23
    assert (await get(api, "rate", "viewer", **SPAN))["activations"] == 19


@pytest.mark.parametrize("route", ROUTES)
async def test_a_key_is_required(api: httpx.AsyncClient, route: str) -> None:
    path = f"/api/v1/alarm-quality/{route}"
    assert (await api.get(path)).status_code == 401
    assert (await api.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await api.get(path, params={"start": 5, "end": 1})).status_code == 401


@pytest.mark.parametrize("route", ["rate", "chattering", "bad-actors", "handling"])
async def test_bad_ranges_are_422(api: httpx.AsyncClient, route: str) -> None:
    path = f"/api/v1/alarm-quality/{route}"
    day = 86_400_000
    for params in (
        {"start": NOW_T0, "end": NOW_T0},  # empty
        {"start": NOW_T0, "end": NOW_T0 - 1},  # backwards
        {"start": NOW_T0 - 31 * day - 1, "end": NOW_T0},  # longer than 31 days
        {"start": 0},  # from the epoch to now
        {"start": "yesterday"},
        {"start": NOW_T0 // 1000, "end": NOW_T0 // 1000 + 3600},  # seconds, not ms
    ):
        r = await api.get(path, params=params, headers=auth("north"))
        assert r.status_code == 422, (params, r.text)
    ok = await api.get(
        path, params={"start": NOW_T0 - 31 * day, "end": NOW_T0}, headers=auth("north")
    )
    assert ok.status_code == 200


async def test_bad_parameters_are_422(api: httpx.AsyncClient) -> None:
    for route, params in (
        ("rate", {"flood": 0}),
        ("bad-actors", {"limit": 0}),
        ("bad-actors", {"limit": 1001}),
        ("standing", {"standing_s": 0}),
        ("standing", {"standing_s": -5}),
    ):
        r = await api.get(f"/api/v1/alarm-quality/{route}", params=params, headers=auth("admin"))
        assert r.status_code == 422, (route, params)
    spec = (await api.get("/openapi.json")).json()
    assert {p for p in spec["paths"] if "alarm-quality" in p} == {
        f"/api/v1/alarm-quality/{route}" for route in ROUTES
    }
    assert spec["paths"]["/api/v1/alarm-quality/rate"]["get"]["tags"] == ["alarm-quality"]


async def test_data_availability_over_http_per_tenant_and_site(api: httpx.AsyncClient) -> None:
    """上线率 (alerts.availability): per site and tenant, the caller's only; a comm loss of a
    point or its device costs the points it covers their time without data."""
    path = "/api/v1/data-quality/availability"
    assert (await api.get(path, params=SPAN)).status_code == 401
    r = await api.get(path, params=SPAN, headers=auth("north"))
    assert r.status_code == 200, r.text
    north = r.json()
    assert {s["tenant"] for s in north["sites"]} == {NORTH}
    assert [t["tenant"] for t in north["tenants"]] == [NORTH]
    worst = [g for s in north["sites"] for g in s["worst"]]
    assert worst and all(g["offline_s"] > 0 for g in worst)
    assert all(0 <= s["online_rate"] <= 1 for s in north["sites"])
    assert any(s["online_rate"] < 1 for s in north["sites"])
    south = (await api.get(path, params=SPAN, headers=auth("south"))).json()
    assert {s["tenant"] for s in south["sites"]} == {SOUTH}
    r = await api.get(path, params={"tenant": NORTH, **SPAN}, headers=auth("south"))
    assert r.status_code == 404
    admin = (await api.get(path, params={"tenant": NORTH, **SPAN}, headers=auth("admin"))).json()
    assert admin == north
    r = await api.get(path, params={"start": NOW_T0, "end": NOW_T0}, headers=auth("admin"))
    assert r.status_code == 422
