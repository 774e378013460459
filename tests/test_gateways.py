"""Gateways offline (`alerts.gateways`): the watch of their statuses, their alarms in the alarm
book (a real state database) and the pipeline's reading of the status topic. The inhibition of the
no-data alarms a gateway offline explains is in test_notify."""

from __future__ import annotations

import pytest

from alerts.alarms import AlarmBook, AlarmEvent
from alerts.gateways import GATEWAY_RULE, GatewayChange, GatewayWatch, gateway_sites
from alerts.statedb import StateDB
from alerts.table import compile_table
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import build_registry
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, mine_registry

T0 = 1_700_000_000_000
SITES = {("t", "gw1"): ("s1", "s2"), ("t", "gw2"): ("s1",), ("u", "gw1"): ("s9",)}


def ids(changes: list[GatewayChange]) -> list[tuple[str, bool]]:
    return [(c.alarm_id, c.offline) for c in changes]


def test_gateway_sites_come_from_the_devices_that_name_the_gateway() -> None:
    devices = [("t", "s2", "gw1"), ("t", "s1", "gw1"), ("t", "s1", "gw2"), ("t", "s1", "gw1")]
    assert gateway_sites(devices) == {("t", "gw1"): ("s1", "s2"), ("t", "gw2"): ("s1",)}


def test_an_offline_gateway_raises_one_alarm_per_site_after_its_grace() -> None:
    w = GatewayWatch()
    w.heard("t", "gw1", False, T0)
    assert w.changes(SITES, set(), T0 + 29_999, 30_000) == []
    got = w.changes(SITES, set(), T0 + 30_000, 30_000)
    assert ids(got) == [("gateway:t/s1/gw1", True), ("gateway:t/s2/gw1", True)]
    assert {c.ts for c in got} == {T0}, "stamped when the hub heard it go offline"
    # raised already: nothing more; one site's alarm missing (a reload added it): that one
    assert w.changes(SITES, {"gateway:t/s1/gw1", "gateway:t/s2/gw1"}, T0 + 60_000, 30_000) == []
    assert ids(w.changes(SITES, {"gateway:t/s1/gw1"}, T0 + 60_000, 30_000)) == [
        ("gateway:t/s2/gw1", True)
    ]
    # another tenant's gateway of the same name is another gateway
    assert w.status("u", "gw1") is None


def test_a_repeated_status_keeps_its_first_time_and_online_clears_only_active_alarms() -> None:
    w = GatewayWatch()
    w.heard("t", "gw1", False, T0)
    w.heard("t", "gw1", False, T0 + 20_000)  # the retained status again, at a reconnection
    assert w.status("t", "gw1") == (False, T0)
    assert ids(w.changes(SITES, set(), T0 + 30_000, 30_000)) != []
    w.heard("t", "gw1", True, T0 + 40_000)
    assert w.changes(SITES, set(), T0 + 40_000, 30_000) == []
    got = w.changes(SITES, {"gateway:t/s2/gw1", "gateway:t/s1/gw2"}, T0 + 40_000, 30_000)
    assert ids(got) == [("gateway:t/s2/gw1", False)], "gw2 said nothing: its alarm stays"
    assert got[0].ts == T0 + 40_000


def test_a_restart_within_the_grace_raises_nothing_and_grace_0_turns_raising_off() -> None:
    w = GatewayWatch()
    w.heard("t", "gw1", False, T0)
    w.heard("t", "gw1", True, T0 + 3_000)
    assert w.changes(SITES, set(), T0 + 100_000, 30_000) == []
    w.heard("t", "gw2", False, T0)
    assert w.changes(SITES, set(), T0 + 100_000, 0) == []
    # with raising off, a gateway back online still clears its alarm
    w.heard("t", "gw2", True, T0 + 200_000)
    assert ids(w.changes(SITES, {"gateway:t/s1/gw2"}, T0 + 200_000, 0)) == [
        ("gateway:t/s1/gw2", False)
    ]


def test_a_status_from_before_a_reconnection_counts_only_once_heard_again() -> None:
    w = GatewayWatch()
    w.heard("t", "gw1", False, T0)
    w.heard("t", "gw2", True, T0)
    w.new_session(T0 + 50_000)  # the hub's link to the broker was lost and is back
    assert w.changes(SITES, {"gateway:t/s1/gw2"}, T0 + 60_000, 30_000) == [], "not yet heard"
    w.heard("t", "gw2", True, T0 + 61_000)
    w.heard("t", "gw1", True, T0 + 61_000)  # it came back while the hub was away
    got = w.changes(SITES, {"gateway:t/s1/gw2"}, T0 + 62_000, 30_000)
    assert ids(got) == [("gateway:t/s1/gw2", False)]
    assert got[0].ts == T0, "the same status: its first time"
    # an offline heard again keeps its first time
    w.heard("t", "gw1", False, T0 + 70_000)
    w.new_session(T0 + 75_000)
    w.heard("t", "gw1", False, T0 + 80_000)
    assert {c.ts for c in w.changes(SITES, set(), T0 + 100_000, 30_000)} == {T0 + 70_000}


GW1, GW2 = ("t", "gw1"), ("t", "gw2")
NEVER = 300_000
S1, S2, S1_GW2 = "gateway:t/s1/gw1", "gateway:t/s2/gw1", "gateway:t/s1/gw2"


# (ops, now, active alarms, expected: (alarm id, raise, never, ts)); ops: ("expect", gateways,
# at) the configuration's devices name them, ("session", at) a connection of the hub to the
# broker, ("heard", gateway, online, at) a status; grace 30 s, never connected 300 s. SITES also
# has gw2 and u's gw1, named by no device (like a JT/T 808 gateway): never raised unheard
NEVER_TABLE = [
    pytest.param(
        [("expect", [GW1], T0 - 5_000)], T0 + 10 * NEVER, set(), [], id="hub-never-connected"
    ),
    pytest.param(
        [("expect", [GW1], T0 - 5_000), ("session", T0)],
        T0 + NEVER - 1,
        set(),
        [],
        id="within-the-wait",
    ),
    pytest.param(
        [("expect", [GW1], T0 - 5_000), ("session", T0), ("session", T0 + 200_000)],
        T0 + NEVER,
        set(),
        [(S1, True, True, T0), (S2, True, True, T0)],
        id="waited-from-the-first-connection-per-site-only-the-named",
    ),
    pytest.param(
        [("expect", [GW1], T0 - 5_000), ("session", T0)],
        T0 + NEVER,
        {S1},
        [(S2, True, True, T0)],
        id="one-site-already-active",
    ),
    pytest.param(
        [("expect", [GW1], T0 - 5_000), ("session", T0)],
        T0 + 2 * NEVER,
        {S1, S2},
        [],
        id="raised-once",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("heard", GW1, True, T0 + 1_000)],
        T0 + NEVER,
        set(),
        [],
        id="online-in-time",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("heard", GW1, True, T0 + 400_000)],
        T0 + 400_000,
        {S1, S2},
        [(S1, False, False, T0 + 400_000), (S2, False, False, T0 + 400_000)],
        id="first-online-clears",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("heard", GW1, False, T0 + 400_000)],
        T0 + 500_000,
        {S1, S2},
        [],
        id="first-offline-keeps",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("heard", GW1, False, T0 + 10_000)],
        T0 + NEVER,
        set(),
        [(S1, True, False, T0 + 10_000), (S2, True, False, T0 + 10_000)],
        id="offline-in-the-wait-is-an-ordinary-outage",
    ),
    pytest.param(
        [("expect", [GW1], T0 - 9), ("expect", [GW1, GW2], T0 - 5), ("session", T0)],
        T0 + NEVER,
        set(),
        [(S1, True, True, T0), (S2, True, True, T0), (S1_GW2, True, True, T0)],
        id="named-before-the-connection",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("expect", [GW1, GW2], T0 + 100_000)],
        T0 + NEVER,
        {S1, S2},
        [],
        id="named-by-a-reload-waited-from-it",
    ),
    pytest.param(
        [("expect", [GW1], T0), ("session", T0), ("expect", [GW1, GW2], T0 + 100_000)],
        T0 + 100_000 + NEVER,
        {S1, S2},
        [(S1_GW2, True, True, T0 + 100_000)],
        id="named-by-a-reload-raised",
    ),
    pytest.param(
        [
            ("expect", [GW1], T0),
            ("session", T0),
            ("expect", [], T0 + 50_000),
            ("expect", [GW1], T0 + 100_000),
        ],
        T0 + NEVER,
        set(),
        [],
        id="named-again-waited-again",
    ),
]


@pytest.mark.parametrize(("ops", "now", "active", "expected"), NEVER_TABLE)
def test_a_gateway_never_heard_from_raises_after_the_wait(ops, now, active, expected) -> None:
    w = GatewayWatch()
    for op, *args in ops:
        if op == "expect":
            w.expect(args[0], args[1])
        elif op == "session":
            w.new_session(args[0])
        else:
            (tenant, gateway), online, at = args
            w.heard(tenant, gateway, online, at)
    got = w.changes(SITES, active, now, 30_000, NEVER)
    assert [(c.alarm_id, c.offline, c.never, c.ts) for c in got] == expected
    # 0 turns the wait off, the offline grace of a status heard stays
    off = w.changes(SITES, active, now, 30_000, 0)
    assert [c for c in off if c.never] == []


def test_the_watch_is_bounded_and_forgets_gateways_not_configured_first(monkeypatch) -> None:
    monkeypatch.setattr("alerts.gateways._KEPT", 10)
    w = GatewayWatch()
    w.heard("t", "gw1", False, T0, SITES)
    for i in range(30):
        w.heard("t", f"stranger-{i}", True, T0, SITES)
    assert w.status("t", "gw1") == (False, T0), "a configured gateway is kept"
    assert w.forgotten > 0
    assert len(w._status) <= 10


def test_the_alarm_book_records_a_gateway_alarm_and_keeps_it_over_a_start(tmp_path) -> None:
    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    try:
        book = AlarmBook(db, reg, compile_table(reg.sensors))
        # the Modbus gateway serves its devices' site; the JT/T 808 gateway the vehicles of
        # each tenant that has some (acme-chem's tanker; north-coal has none)
        assert book.gateway_sites() == {
            ("north-coal", "gw1"): ("face-1301",),
            ("acme-chem", "jt808"): ("vehicles",),
        }
        raised = book.apply_gateways(
            [GatewayChange("north-coal", "face-1301", "gw1", True, T0)], T0 + 30_000
        )
        [ev] = raised
        assert (ev.kind, ev.sensor, ev.rule, ev.side, ev.level_name, ev.tier) == (
            "raised",
            "gateway:north-coal/face-1301/gw1",
            GATEWAY_RULE,
            "no_data",
            "gateway_offline",
            "orange",
        )
        assert (ev.device, ev.ts, ev.arrival) == ("gw1", T0, T0 + 30_000)
        [row] = [r for r in db.active_alarms() if r.rule == GATEWAY_RULE]
        assert row.gateway == "gw1"
        # a start with the same configuration keeps it (nothing retires it) ...
        book2 = AlarmBook(db, reg, compile_table(reg.sensors))
        assert book2.retire(T0 + 40_000, set()) == []
        assert book2.active_gateway_alarms() == {"gateway:north-coal/face-1301/gw1"}
        # ... and a configuration where no device names the gateway any more retires it
        reg3 = _moved(reg, "gw-new")
        book3 = AlarmBook(db, reg3, compile_table(reg3.sensors))
        [gone] = book3.retire(T0 + 50_000, set())
        assert (gone.kind, gone.sensor) == ("cleared", "gateway:north-coal/face-1301/gw1")
    finally:
        db.close()


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"online", ("north-coal", "gw1", True, T0), None),
        (b"offline", ("north-coal", "gw1", False, T0), None),
        (b"", ("north-coal", "gw1", True, T0), None),  # deleted: clears like online
        (b"OFFLINE ", None, "bad_status"),
        (b"\xff\xfe", None, "bad_status"),
    ],
)
def test_the_pipeline_reads_a_gateway_status(payload, status, reason) -> None:
    metrics = Metrics()
    pipe = Pipeline(mine_registry(1502, 1.0), TopicLayout(), metrics)
    got = pipe.handle("hazardhub/v1/north-coal/gateways/gw1/status", payload, T0)
    assert got.status == status
    assert got.rejected_whole == (reason is not None)
    if reason:
        assert got.reasons and got.reasons[0].startswith(reason)
        assert "online or offline" in got.reasons[0]
    # a gateway's drop report is not a status
    other = pipe.handle("hazardhub/v1/north-coal/gateways/gw1/dropped", b"{}", T0)
    assert other.status is None and other.kind == "dropped"


def _moved(reg, gateway: str):
    """The registry with every device of north-coal's face-1301 on `gateway`."""
    data = reg.config.model_dump(mode="json", by_alias=True)
    for dev in data["tenants"][0]["sites"][0]["devices"]:
        dev["gateway"] = gateway
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(HubConfig.model_validate(data), profiles, packs, "moved.yaml")


async def test_the_dispatcher_raises_clears_and_follows_a_reload(tmp_path) -> None:
    """Statuses through `Dispatcher.gateway_status`, alarms at its tick (horizon included), and
    a reload that moves the devices to another gateway: the old alarm retired, the new
    gateway's judged from its own status."""
    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    d = Dispatcher(reg, store, db, Metrics())
    old, new = "gateway:north-coal/face-1301/gw1", "gateway:north-coal/face-1301/gw9"
    try:
        d.gateway_status("north-coal", "gw1", False, T0)
        d.gateway_status("north-coal", "gw9", False, T0)  # not configured yet
        # the grace (30 s) passed by the clock, not by the horizon: a message taken before it is
        # not judged yet (it may be the gateway's online)
        assert await d.tick(T0 + 40_000, horizon=T0 + 20_000) == []
        [raised] = await d.tick(T0 + 40_000)
        assert (raised.kind, raised.sensor, raised.ts) == ("raised", old, T0)
        assert await d.tick(T0 + 41_000) == [], "raised once"
        events = d.reload(_moved(reg, "gw9"), T0 + 42_000)
        assert [(e.kind, e.sensor) for e in events] == [("cleared", old)]
        [raised9] = await d.tick(T0 + 43_000)
        assert (raised9.kind, raised9.sensor) == ("raised", new)
        d.gateway_status("north-coal", "gw9", True, T0 + 44_000)
        [cleared] = await d.tick(T0 + 44_000)
        assert (cleared.kind, cleared.sensor, cleared.ts) == ("cleared", new, T0 + 44_000)
        assert {r.sensor for r in db.active_alarms() if r.rule == GATEWAY_RULE} == set()
    finally:
        await store.close()
        db.close()


async def raised_cleared(d: Dispatcher, now: int) -> list[AlarmEvent]:
    """The alarms raised and cleared at a tick (not the desk's, as disposals falling overdue)."""
    return [e for e in await d.tick(now) if e.kind in ("raised", "cleared")]


async def test_a_gateway_never_connected_raises_once_over_a_restart_until_online(tmp_path) -> None:
    """The configured gw1 never says a word: its alarm 300 s (the default) after the hub's first
    connection, marked never connected; a restarted hub keeps it without raising it again, an
    `offline` keeps it, the first `online` clears it; a gateway a reload names is waited for
    from the reload. The JT/T 808 gateway of acme-chem's
    vehicles, named by no device, raises nothing unheard."""
    reg = mine_registry(1502, 1.0)
    assert reg.config.gateway_never_connected_s == 300
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    alarm = "gateway:north-coal/face-1301/gw1"
    try:
        d = Dispatcher(reg, store, db, Metrics())
        assert await raised_cleared(d, T0 + 3_600_000) == [], (
            "not connected to the broker yet: no wait"
        )
        d.gateways.new_session(T0)
        assert await raised_cleared(d, T0 + 299_999) == []
        [raised] = await raised_cleared(d, T0 + 300_000)
        assert (raised.kind, raised.sensor, raised.level_name, raised.ts) == (
            "raised",
            alarm,
            "gateway_offline",
            T0,
        )
        assert "从未上线" in raised.action and "never connected" in raised.action
        assert "从未上线 never connected" in raised.comment
        assert await raised_cleared(d, T0 + 301_000) == [], "raised once"
        # the hub restarts: the alarm is the database's, the wait counted again
        d2 = Dispatcher(reg, store, db, Metrics())
        d2.gateways.new_session(T0 + 400_000)
        assert await raised_cleared(d2, T0 + 800_000) == [], "not raised twice"
        d2.gateway_status("north-coal", "gw1", False, T0 + 801_000)
        assert await raised_cleared(d2, T0 + 900_000) == [], "an offline keeps it"
        d2.gateway_status("north-coal", "gw1", True, T0 + 901_000)
        [cleared] = await raised_cleared(d2, T0 + 901_000)
        assert (cleared.kind, cleared.sensor) == ("cleared", alarm)
        assert {r.sensor for r in db.active_alarms() if r.rule == GATEWAY_RULE} == set()
        # a reload moves the devices to gw9, never heard from: waited for from the reload
        d2.reload(_moved(reg, "gw9"), T0 + 1_000_000)
        assert await raised_cleared(d2, T0 + 1_299_999) == []
        [raised9] = await raised_cleared(d2, T0 + 1_300_000)
        assert (raised9.sensor, raised9.ts) == ("gateway:north-coal/face-1301/gw9", T0 + 1_000_000)
    finally:
        await store.close()
        db.close()
