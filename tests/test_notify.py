"""The notification pipeline with an injected clock: match, the lifecycle gate, inhibition,
silences and maintenance windows, grouping, repeats and escalation, routing after a restart.

Notifications go through the real SSE channel of `Senders` into a list; the journal and the outbox
are the real SQLite state database.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import datetime
from typing import Any

import pytest

from alerts.alarms import AlarmBook
from alerts.desk import AlarmDesk
from alerts.errors import AlarmStoreError
from alerts.evaluate import CoreState
from alerts.gateways import GatewayChange
from alerts.kinds import value_unit
from alerts.notify.channels import Notification, Senders
from alerts.notify.delivery import guarded_json
from alerts.notify.notifier import Notifier, NotifyObjectError
from alerts.notify.stages import CST, EventView, silenced_by
from alerts.statedb import StateDB
from alerts.table import ABOVE, EARLY, NO_DATA, compile_table
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig, SuppressSpec
from telemetry.errors import ConfigError
from telemetry.notifyconfig import (
    EscalationPolicySpec,
    SilenceSpec,
    SmtpSpec,
    SubscriptionSpec,
)
from telemetry.quality import Quality
from telemetry.registry import build_registry

from e2e_helpers import ROOT, mine_registry
from notify_rig import T0, bare, keys, kinds, told
from receivers import WebhookReceiver


async def test_match_by_tier_kind_site_and_tenant(rig):
    rig.subscribe(id="red", match={"tiers": ["red"]})
    rig.subscribe(id="co", match={"sensor_kinds": ["co"]})
    rig.subscribe(id="elsewhere", match={"sites": ["vehicles"]})  # its vehicles only
    rig.subscribe(tenant="acme-chem", id="theirs")  # another tenant: never
    rig.feed("ch4-t1", [0.3, 1.1])  # yellow raise
    assert await rig.pump() == []
    rig.feed("ch4-t1", [1.6])  # red escalation
    notes = await rig.pump(1)
    assert [n.key.split(":")[0] for n in notes] == ["north-coal/red"]
    assert kinds(notes) == [[("ch4-t1", "escalated")]]
    # (the enterprise's name: two enterprises may each have a site of the same id)
    assert notes[0].subject.startswith("[RED] 北方煤业 face-1301 ch4-t1 above power_cut escalated")
    # the clear keeps the alarm's tier, so the red subscription hears it
    rig.feed("ch4-t1", [0.5])
    notes = await rig.pump(1)
    assert kinds(notes) == [[("ch4-t1", "cleared")]]


async def test_an_alarm_that_ended_while_shelved_is_told_cleared_once_at_the_unshelve(rig):
    """A receiver told of a red raise heard nothing more when the alarm cleared while shelved:
    the clear is held back, and the unshelve told only raises (helper-99). It is told as the
    clear, once; an alarm shelved after it had cleared (its clear told) is not told again."""
    rig.subscribe(id="red", match={"tiers": ["red"]})
    (raised,) = rig.feed("ch4-t1", [0.3, 1.6])
    assert kinds(await rig.pump()) == [[("ch4-t1", "raised")]]
    until = rig.now + 600_000
    rig.desk.act(raised.alarm_id, "shelve", actor="op", now=rig.now, until=until, note="works")
    rig.feed("ch4-t1", [0.5])  # cleared while shelved: held back
    assert await rig.pump(1) == []
    rig.desk.act(raised.alarm_id, "unshelve", actor="op", now=rig.now)
    notes = await rig.pump()
    assert kinds(notes) == [[("ch4-t1", "unshelved")]]
    (event,) = notes[0].body["events"]  # type: ignore[index]
    assert event["annunciated"] == "cleared"
    # shelved again (still to be acknowledged) and unshelved: its clear was told, nothing more
    rig.desk.act(raised.alarm_id, "shelve", actor="op", now=rig.now, until=until, note="again")
    rig.desk.act(raised.alarm_id, "unshelve", actor="op", now=rig.now)
    assert await rig.pump(1) == []


async def test_shelved_suppressed_and_out_of_service_alarms_are_not_annunciated(rig):
    rig.subscribe(id="all")
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1
    rig.desk.act(
        raised.alarm_id,
        "shelve",
        actor="op",
        now=rig.now,
        until=rig.now + 600_000,
        note="sensor being cleaned",
    )
    rig.feed("ch4-t1", [0.5, 1.2])  # returns and comes back: the new activation starts shelved
    alarms = rig.db.list_alarms(None, state="active")
    assert [a.isa_state for a in alarms] == ["shelved"]
    assert await rig.pump(1) == []
    # the shelve expires by itself: the still-active alarm is annunciated as raised
    rig.now += 601_000
    events = rig.desk.tick(rig.now)
    assert sorted((e.alarm_id, e.kind, e.actor) for e in events) == [
        (raised.alarm_id, "unshelved", "system"),
        (alarms[0].id, "unshelved", "system"),
    ]
    notes = await rig.pump()
    got = sorted((e["alarm_id"], e["annunciated"]) for n in notes for e in n.body["events"])  # type: ignore[union-attr,index]
    # and the first, which ended while shelved, as cleared (its raise was told)
    assert got == [(raised.alarm_id, "cleared"), (alarms[0].id, "raised")]
    # shelved at yellow, the power cut's red breaks through, annunciated (helper-93)
    rig.desk.act(
        alarms[0].id, "shelve", actor="op", now=rig.now, until=rig.now + 600_000, note="chatter"
    )
    rig.feed("ch4-t1", [1.6])
    notes = await rig.pump(1)
    assert kinds(notes) == [[("ch4-t1", "escalated")]]  # once
    (event,) = notes[0].body["events"]  # type: ignore[index]
    assert "escalated above the level shelved: op 搁置 shelved the point" in event["comment"]
    # out of service: a new activation is recorded but not notified
    rig.desk.set_in_service("co", False, actor="op", now=rig.now, reason="calibration")
    rig.feed("co", [0.0, 30.0])
    co = rig.db.list_alarms(None, sensor="co")
    assert co[0].isa_state == "out_of_service"
    assert await rig.pump(1) == []


async def test_suppression_by_design_follows_the_condition(rig, tmp_path):
    reg_yaml = mine_registry(1502, 1.0)  # the stock site has no suppress_when; add one inline
    cfg = reg_yaml.config.model_copy(deep=True)
    tenant = cfg.tenants[0]
    site = tenant.sites[0]
    dev = site.devices[0]
    sensors = tuple(
        s.model_copy(update={"suppress_when": (SuppressSpec(sensor="ch4-t0", alarm=True),)})
        if s.id == "co"
        else s
        for s in dev.sensors
    )
    from hazardhub.settings import load_profiles
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry

    from e2e_helpers import ROOT

    data = cfg.model_dump(mode="json", by_alias=True)
    data["tenants"][0]["sites"][0]["devices"][0]["sensors"] = [
        s.model_dump(mode="json", by_alias=True) for s in sensors
    ]
    profiles, packs = load_profiles(ROOT / "profiles")
    reg = build_registry(HubConfig.model_validate(data), profiles, packs, "suppress.yaml")
    rig.reg = reg
    rig.table = compile_table(reg.sensors)
    rig.db = StateDB(tmp_path / "state2.db")
    rig.book = AlarmBook(rig.db, reg, rig.table)
    rig.desk = AlarmDesk(rig.db, reg, rig.book)
    rig.state = CoreState.empty(len(reg.sensors))
    rig.notifier = Notifier(
        rig.db, reg, rig.notifier._senders, reg.config.notify, clock=lambda: rig.now
    )
    rig.subscribe(id="co", match={"sensor_kinds": ["co"]})
    rig.feed("ch4-t0", [0.3, 1.0])  # an upstream alarm explains the CO alarms
    rig.feed("co", [0.0, 30.0])
    (co,) = rig.db.list_alarms(None, sensor="co")
    assert co.isa_state == "suppressed"
    assert await rig.pump(1) == []
    rig.feed("ch4-t0", [0.2])  # the upstream alarm clears: the clock lifts the suppression
    events = rig.desk.tick(rig.now, rig.state)
    assert [(e.kind, e.isa_state) for e in events] == [("unsuppressed", "unack")]
    notes = await rig.pump()
    assert [(e["kind"], e["annunciated"]) for n in notes for e in n.body["events"]] == [  # type: ignore[union-attr,index]
        ("unsuppressed", "raised")
    ]


async def test_a_higher_alarm_of_the_sensor_inhibits_the_lower_one(rig):
    rig.subscribe(id="all")
    rig.transition("ch4-t1", ABOVE, 0, 2)  # red, power cut
    rig.transition("ch4-t1", EARLY, 0, 1)  # blue early warning beside it
    notes = await rig.pump()
    assert [(e["alarm_kind"], e["tier"]) for n in notes for e in n.body["events"]] == [  # type: ignore[union-attr,index]
        ("above", "red")
    ]
    # without the red alarm the early warning goes through
    rig.transition("ch4-t0", EARLY, 0, 1)
    notes = await rig.pump(1)
    assert [(e["sensor"], e["alarm_kind"]) for n in notes for e in n.body["events"]] == [  # type: ignore[union-attr,index]
        ("ch4-t0", "early_warning")
    ]


async def test_an_alarm_that_ends_under_a_higher_one_of_its_sensor_is_told_it_ended(rig):
    """Inhibition keeps a lower alarm's noise back, never its end: a receiver told of the raise
    was left with an alarm active for good (helper-71)."""
    rig.subscribe(id="all")
    notes = []
    rig.transition("ch4-t1", EARLY, 0, 1)  # blue early warning: told
    notes += await rig.pump()
    rig.transition("ch4-t1", ABOVE, 0, 2)  # red power cut beside it: told
    notes += await rig.pump(1)
    rig.transition("ch4-t1", EARLY, 1, 0)  # the early warning ends under the red alarm
    notes += await rig.pump(1)
    assert [(e["alarm_kind"], e["kind"]) for n in notes for e in n.body["events"]] == [  # type: ignore[union-attr,index]
        ("early_warning", "raised"),
        ("above", "raised"),
        ("early_warning", "cleared"),
    ]


async def test_a_subscription_by_tier_hears_the_end_of_what_it_heard(rig):
    """Told of an alarm at red (its escalation), a red-only subscription hears it step down
    and clear, though both are at yellow; a yellow-only one is not told of the red step."""
    events = ["raised", "escalated", "deescalated", "cleared"]
    rig.subscribe(id="red", match={"tiers": ["red"], "events": events})
    rig.subscribe(id="orange", match={"tiers": ["orange"], "events": events})
    for before, after in ((0, 1), (1, 2), (2, 1), (1, 0)):
        rig.transition("ch4-t1", ABOVE, before, after)
    notes = await rig.pump()
    assert [(e["kind"], e["tier"]) for e in _events(notes, "red")] == [
        ("escalated", "red"),
        ("deescalated", "yellow"),
        ("cleared", "yellow"),
    ]
    assert _events(notes, "orange") == []  # it never was orange


async def test_a_tier_subscription_hears_the_end_of_a_red_alarm_after_a_yellow_ones(rig):
    """helper-146: the city's red subscription did not hear the clear of an LPG detector's
    level-2 alarm: the routing remembered whether a kind of event matched without the tiers the
    alarm had, and a yellow-only alarm's clear of the same site and kind, routed first, had
    been remembered as no match."""
    rig.subscribe(id="red", match={"tiers": ["red"]})
    for before, after in ((0, 1), (1, 0)):  # yellow only, then gone
        rig.transition("ch4-t0", ABOVE, before, after)
    for before, after in ((0, 1), (1, 2), (2, 1), (1, 0)):  # red, then down and gone
        rig.transition("ch4-t1", ABOVE, before, after)
    notes = await rig.pump()
    assert [(e["sensor"], e["kind"]) for e in _events(notes, "red")] == [
        ("ch4-t1", "escalated"),
        ("ch4-t1", "cleared"),
    ]


async def test_a_sensor_fault_goes_out_without_the_faulty_signal_as_its_value(rig):
    """helper-146: a 4-20 mA detector's broken loop (2 mA, below 3.6) went to the city and into
    the alarm's peak as -12.5 %LEL: a fault's reading is no measurement, the alarm has no value."""
    rig.subscribe(id="all")
    rig.feed("co", [-12.5], quality=1)  # SENSOR_FAULT, the scaled signal of 2 mA
    (note,) = await rig.pump()
    (event,) = note.body["events"]  # type: ignore[index]
    assert (event["alarm_kind"], event["value"], event["unit"]) == ("fault", None, "")
    (row,) = [r for r in rig.db.list_alarms(None) if r.sensor == "co"]
    assert row.value is None


async def test_a_subscription_by_tier_hears_the_deadline_missed_after_a_step_down(rig):
    """helper-115: a red alarm stepped down to yellow missed the red deadline (verify within
    300 s); its `overdue` went out at yellow, and the red-only receiver (the bureau chief) was
    never told. It now hears of it; a yellow-only one that never heard the red is told too (the
    alarm is yellow), an orange-only one is not (never orange)."""
    events = ["raised", "escalated", "overdue"]
    for tier in ("red", "yellow", "orange"):
        rig.subscribe(id=tier, match={"tiers": [tier], "events": events})
    for before, after in ((0, 1), (1, 2), (2, 1)):
        rig.transition("ch4-t1", ABOVE, before, after)
    await rig.pump()
    rig.now += 301_000
    rig.desk.tick(rig.now)
    notes = await rig.pump()
    assert [(e["kind"], e["tier"]) for e in _events(notes, "red")] == [("overdue", "yellow")]
    assert [e["kind"] for e in _events(notes, "yellow")] == ["overdue"]
    assert _events(notes, "orange") == []
    # and it says the alarm reached red: told as yellow alone, a receiver routing on the tier
    # took it for a minor one (helper-126)
    assert [e["peak_tier"] for e in _events(notes, "red")] == ["red"]
    (red,) = [n for n in notes if n.body["subscription"] == "north-coal/red"]  # type: ignore[index]
    assert red.subject.startswith("[YELLOW, reached RED] "), red.subject


def test_a_sensor_kind_a_subscription_names_is_one_the_hub_has(rig, caplog):
    for n, names in enumerate((["methane", "co"], ["device", "gateway"], ["speed"])):
        rig.subscribe(id=f"ok{n}", match={"sensor_kinds": names})
    with pytest.raises(NotifyObjectError, match="sensor_kinds 'methan': no such kind"):
        rig.subscribe(id="typo", match={"sensor_kinds": ["methan"]})  # it matched nothing
    # one an older hub stored is still read (and listed), not a failure of every list
    old = SubscriptionSpec.model_validate(
        {"id": "old", "channel": {"type": "sse"}, "match": {"sensor_kinds": ["methan"]}}
    )
    with rig.db.transaction() as con:
        con.execute(
            "INSERT INTO notify_objects (kind, tenant, id, spec, origin, actor, updated_at)"
            " VALUES ('subscription', 'north-coal', 'old', ?, 'api', 'op', 0)",
            (old.model_dump_json(),),
        )
    ids = [spec.id for _, spec in rig.notifier.objects("subscription", None)]
    assert ids == ["ok0", "ok1", "ok2", "old"]
    rig.notifier.close()
    with caplog.at_level(logging.WARNING, logger="alerts.notify.notifier"):
        rig.notifier = rig.new_notifier()  # the upgraded hub starts: it says so at once
    said = [r.getMessage() for r in caplog.records if r.name == "alerts.notify.notifier"]
    assert len(said) == 1
    assert said[0].startswith("subscription 'old' of north-coal hears or holds nothing of them")
    assert "sensor_kinds 'methan': no such kind" in said[0]


def test_objects_put_from_several_threads_at_once_are_all_routed(rig):
    """The API saves from worker threads: each save read the in-memory list, wrote the
    database and put its list back, and concurrent saves lost each other's subscription from
    routing until the next reload (helper-75: 600 saved, 225-350 routed)."""

    def put_many(worker: int) -> None:
        for n in range(300):
            spec = SubscriptionSpec.model_validate(
                {"id": f"w{worker}-{n}", "channel": {"type": "sse"}}
            )
            owner = "enterprise" if worker % 2 else "centre"
            rig.notifier.put("subscription", "north-coal", spec, "k", owner=owner)

    threads = [threading.Thread(target=put_many, args=(w,)) for w in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: a lost update shows in every run
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(rig.notifier.catalog.subs["north-coal"]) == 8 * 300
    assert len(rig.notifier.catalog.guarded) == 4 * 300  # the enterprise's, each guarded


def test_value_units_follow_the_alarm_kind():
    assert value_unit("above", "%CH4") == "%CH4"
    assert value_unit("early_warning", "ppm") == "ppm"
    assert [value_unit(k, "km/h") for k in ("overspeed", "fatigue", "corridor", "offline")] == [
        "km/h",
        "s",
        "m",
        "s",
    ]
    assert value_unit("data_lost", "%CH4") == "readings"
    assert value_unit("terminal_emergency", "km/h") == ""
    assert value_unit("no_data", "%CH4") == ""
    # 馈电异常's value is the feed still on, not methane
    assert value_unit("action_failed", "%CH4", "on/off") == "on/off"


async def test_a_notification_says_where_and_in_what_unit(rig):
    """The event names the sensor's place (a vehicle's plate) and the unit of its value: a
    receiver showed a fatigue alarm's 14,419 s of driving as 14,419 km/h (helper-71)."""
    rig.subscribe(id="all")
    rig.feed("co", [5.0, 40.0])
    (note,) = await rig.pump()
    (event,) = note.body["events"]  # type: ignore[index]
    assert (event["sensor"], event["value"], event["unit"], event["location"]) == (
        "co",
        40.0,
        "ppm",
        "",
    )
    # and the names people know them by (helper-115: ids only, in every channel)
    names = [event[k] for k in ("tenant_name", "site_name", "device_name", "tag")]
    assert names == ["北方煤业", "1301 综采工作面", "KJ 分站 3", ""]
    rig.feed("ch4-t1", [1.2])
    (note,) = await rig.pump()
    (event,) = note.body["events"]  # type: ignore[index]
    assert (event["device_name"], event["tag"]) == ("KJ 分站 3", "T1")


def _events(notes: list[Notification], sub: str) -> list[dict[str, Any]]:
    return [
        e
        for n in notes
        if n.body["subscription"] == f"north-coal/{sub}"  # type: ignore[index]
        for e in n.body["events"]  # type: ignore[union-attr,index]
    ]


async def test_device_comm_loss_inhibits_its_sensors_no_data_alarms(rig):
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    for sid in ("ch4-t0", "ch4-t1", "ch4-t2", "co", "feed"):
        rig.feed(sid, [float("nan")], quality=int(Quality.COMM_LOSS))
    notes = await rig.pump()
    sensors = [e["sensor"] for n in notes for e in n.body["events"]]  # type: ignore[union-attr,index]
    assert sensors == ["device:north-coal/face-1301/kj-sub-3"]
    held = rig.db.list_alarms(None, side=NO_DATA, state="active")
    assert len(held) == 5  # four watched sensors and the device: all recorded, one notified
    # one sensor answers again: the device alarm clears (notified); that sensor's clear is not
    # (its raise never was), and the sensors the device held back, still without data, are
    # told now (once), as released
    rig.feed("co", [5.0])
    notes = await rig.pump(1)
    assert [(e["sensor"], e["kind"]) for n in notes for e in n.body["events"]] == [  # type: ignore[union-attr,index]
        ("device:north-coal/face-1301/kj-sub-3", "cleared"),
        ("ch4-t0", "released"),
        ("ch4-t1", "released"),
        ("ch4-t2", "released"),
    ]
    assert {e["annunciated"] for n in notes[1:] for e in n.body["events"]} == {"raised"}  # type: ignore[union-attr,index]
    assert await rig.pump(60) == []


async def test_an_offline_gateway_inhibits_its_devices_and_sensors_no_data(rig):
    # "comm" is told of the gateway's and the device's alarms; "ch4" of methane points only
    rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})
    rig.subscribe(id="ch4", match={"sensor_kinds": ["methane"]})
    rig.book.apply_gateways(
        [GatewayChange("north-coal", "face-1301", "gw1", True, rig.now)], rig.now
    )
    for sid in ("ch4-t0", "ch4-t1", "ch4-t2", "co", "feed"):
        rig.feed(sid, [float("nan")], quality=int(Quality.COMM_LOSS))
    notes = await rig.pump()
    gateway, device = "gateway:north-coal/face-1301/gw1", "device:north-coal/face-1301/kj-sub-3"
    # "comm" hears of the gateway only: the device's comm loss and the sensors' no-data alarms
    # it explains are held back from it (recorded all the same) ...
    assert told(notes, "comm") == [(gateway, "raised")]
    active = {a.sensor for a in rig.db.list_alarms(None, state="active")}
    assert {device, "ch4-t1", "co"} <= active
    # ... but "ch4", never told of the gateway, is told of its methane points
    assert sorted(told(notes, "ch4")) == [(f"ch4-t{i}", "raised") for i in range(3)]
    # the gateway is back, the device still silent: "comm" is told of the clear and of the
    # device's comm loss, which now holds its sensors back; "ch4" is told nothing again
    rig.book.apply_gateways(
        [GatewayChange("north-coal", "face-1301", "gw1", False, rig.now)], rig.now
    )
    notes = await rig.pump(1)
    assert told(notes, "comm") == [(gateway, "cleared"), (device, "released")]
    assert told(notes, "ch4") == []
    [released] = [e for n in notes for e in n.body["events"] if e["kind"] == "released"]  # type: ignore[attr-defined]
    assert (released["annunciated"], released["level_name"]) == ("raised", "device_comm_loss")
    assert await rig.pump(3600) == [], "released once"


async def test_silence_and_weekly_maintenance_window(rig):
    rig.subscribe(id="all")
    rig.notifier.put(
        "silence",
        "north-coal",
        SilenceSpec(
            id="s1", comment="blasting", sites=("face-1301",), starts=T0 - 1, ends=T0 + 60_000
        ),
        "op",
    )
    rig.feed("ch4-t1", [0.3, 1.1])
    assert await rig.pump() == []
    rig.feed("ch4-t1", [1.6])
    assert await rig.pump(61) != []  # the silence ended
    # a weekly window, Monday 02:00-04:00 China Standard Time
    spec = SilenceSpec(
        id="w",
        comment="weekly maintenance",
        recurrence={"weekdays": [0], "start": "02:00", "duration_min": 120},
    )
    view = EventView(1, 1, "raised", "t", "s", "d", "x", "co", "above", "red", "unack", True)

    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=CST).timestamp() * 1000)

    assert silenced_by([spec], view, at("2026-11-30T02:30")) == "w"  # a Monday
    assert silenced_by([spec], view, at("2026-11-30T04:00")) is None
    assert silenced_by([spec], view, at("2026-12-01T02:30")) is None  # Tuesday
    over_midnight = spec.model_copy(
        update={"recurrence": spec.recurrence.model_copy(update={"start": "23:00"})}  # type: ignore[union-attr]
    )
    assert silenced_by([over_midnight], view, at("2026-12-01T00:30")) == "w"  # Monday 23:00 + 2 h


async def test_grouping_window_per_site(rig):
    rig.subscribe(id="grp", group_window_s=10)
    rig.feed("ch4-t1", [0.3, 1.1])
    first = await rig.pump()
    assert kinds(first) == [[("ch4-t1", "raised")]]  # the first goes at once
    rig.feed("ch4-t0", [0.3, 1.0])
    assert await rig.pump(1) == []
    rig.feed("co", [0.0, 30.0])
    assert await rig.pump(2) == []
    later = await rig.pump(8)  # the window's end: the rest together
    assert kinds(later) == [[("ch4-t0", "raised"), ("co", "raised")]]
    assert later[0].subject.endswith("(+1)")
    rig.feed("ch4-t2", [0.3, 1.5])  # after the window: at once again
    assert len(await rig.pump(1)) == 1


async def test_repeat_while_unacknowledged(rig):
    rig.subscribe(id="rep", repeat_s=60)
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1
    assert await rig.pump(30) == []
    notes = await rig.pump(31)
    assert kinds(notes) == [[("ch4-t1", "repeat")]]
    assert bare(notes[0].key) == f"north-coal/rep:r{raised.alarm_id}:1"
    assert await rig.pump(1) == []  # not again within the interval
    assert len(await rig.pump(60)) == 1
    rig.desk.act(raised.alarm_id, "acknowledge", actor="op", now=rig.now)
    assert await rig.pump(120) == []


async def test_escalation_chain_until_acknowledged(rig):
    rig.notifier.put(
        "escalation",
        "north-coal",
        EscalationPolicySpec.model_validate(
            {
                "id": "chain",
                "steps": [
                    {"after_s": 300, "channel": {"type": "sse"}},
                    {"after_s": 900, "channel": {"type": "mqtt"}},
                ],
            }
        ),
        "op",
    )
    rig.subscribe(id="duty", escalation="chain")
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1
    assert await rig.pump(299) == []
    notes = await rig.pump(2)
    assert kinds(notes) == [[("ch4-t1", "escalation")]]
    # the second contact is MQTT, which this rig has no connection for: the row goes dead
    assert await rig.pump(600) == []
    dead = rig.notifier.store.outbox(None, "dead")
    assert [bare(r[1]) for r in dead] == [f"north-coal/duty:x{raised.alarm_id}:1"]
    assert "MQTT" in dead[0][10] or "mqtt" in dead[0][10]
    # once acknowledged nothing escalates
    (again,) = rig.feed("ch4-t0", [0.3, 1.0])
    await rig.pump()
    rig.desk.act(again.alarm_id, "acknowledge", actor="op", now=rig.now)
    assert await rig.pump(301) == []


async def test_a_window_groups_the_events_of_one_routing_pass_in_order(rig):
    rig.subscribe(id="grp", group_window_s=10)
    rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1  # opens the window
    rig.feed("ch4-t0", [0.3, 1.0])
    rig.feed("co", [0.0, 30.0])
    rig.feed("ch4-t2", [0.3, 1.1])
    assert await rig.pump(1) == []  # one pass: the first opens the group, the others join it
    later = await rig.pump(9)
    assert kinds(later) == [[("ch4-t0", "raised"), ("co", "raised"), ("ch4-t2", "raised")]]
    assert later[0].subject.endswith("(+2)")


async def test_routing_runs_outside_the_write_lock_and_never_routes_an_event_twice(rig):
    """The events are routed on a snapshot, without the state database's lock (the alarm
    book can write meanwhile) or the outbox's; a second router that moves the cursor in that
    time (here: one on the same databases) keeps its rows, and the first writes none."""
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.feed("co", [0.0, 30.0])
    other = Notifier(rig.db, rig.reg, Senders(smtp=SmtpSpec()), clock=lambda: rig.now)
    seen: list[bool] = []
    real = rig.notifier._route_one

    def route_one(*args: Any) -> int:
        if not seen:
            free = True
            for lock in (rig.db._lock, rig.notifier.outbox._lock):
                got = lock.acquire(blocking=False)
                if got:
                    lock.release()
                free = free and got
            seen.append(free)
            if free:
                assert other.route() == 2  # the other router routes the same two events
        return real(*args)

    rig.notifier._route_one = route_one  # type: ignore[method-assign]
    assert rig.notifier.route() == 0
    assert seen == [True]
    keys = [r[0] for r in rig.notifier.outbox.query("SELECT key FROM outbox ORDER BY id")]
    assert keys == ["north-coal/all:e1", "north-coal/all:e2"]
    assert rig.notifier.route() == 0  # and nothing is left to route
    assert len(await rig.pump()) == 2


async def test_a_failed_routing_write_opens_no_grouping_window(rig):
    """Routed again after its write failed, the first event of a window still goes at once
    (its own row), not as a group row due at the window's end."""
    rig.subscribe(id="grp", group_window_s=60)
    rig.feed("ch4-t1", [0.3, 1.1])
    store = rig.notifier.store
    real = store.set_cursor

    def disk_full(con: Any, name: str, last_id: int) -> None:
        raise AlarmStoreError("state database: disk full")

    store.set_cursor = disk_full  # type: ignore[method-assign]
    with pytest.raises(AlarmStoreError):
        rig.notifier.route()
    assert rig.notifier.outbox.query("SELECT COUNT(*) FROM outbox") == [(0,)]
    store.set_cursor = real  # type: ignore[method-assign]
    assert kinds(await rig.pump()) == [[("ch4-t1", "raised")]]
    assert [r[0] for r in rig.notifier.outbox.query("SELECT key FROM outbox")] == [
        "north-coal/grp:e1"
    ]


async def test_routing_survives_a_restart_and_routes_each_event_once(rig, tmp_path):
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.notifier.route()  # routed, not yet delivered
    # a new pipeline on the same database (the hub restarted) delivers what was routed
    sent: list[Notification] = []

    async def sse(n: Notification) -> None:
        sent.append(n)

    again = Notifier(
        rig.db, rig.reg, Senders(smtp=SmtpSpec(), sse_publish=sse), clock=lambda: rig.now
    )
    assert again.route() == 0  # nothing is routed twice
    assert await again.deliver_due() == 1
    assert keys(sent) == ["north-coal/all:e1"]
    assert await again.deliver_due() == 0


def test_objects_are_validated_and_tenant_bound(rig):
    with pytest.raises(NotifyObjectError):
        rig.subscribe(tenant="nobody", id="x")
    with pytest.raises(NotifyObjectError):
        rig.subscribe(id="x", escalation="missing")
    rig.notifier.put(
        "escalation",
        "north-coal",
        EscalationPolicySpec.model_validate(
            {"id": "p", "steps": [{"after_s": 60, "channel": {"type": "sse"}}]}
        ),
        "op",
    )
    rig.subscribe(id="x", escalation="p")
    with pytest.raises(NotifyObjectError):
        rig.notifier.delete("escalation", "north-coal", "p")
    assert rig.notifier.delete("subscription", "north-coal", "x")
    assert rig.notifier.delete("escalation", "north-coal", "p")
    assert not rig.notifier.delete("escalation", "north-coal", "p")


def test_a_reload_that_removes_what_an_api_object_names_says_so(rig, caplog):
    rig.subscribe(id="face", match={"sites": ["face-1301"]})
    silence = SilenceSpec.model_validate(
        {"id": "co-work", "comment": "cable work", "sensors": ["co"], "starts": T0, "ends": T0 + 1}
    )
    rig.notifier.put("silence", "north-coal", silence, "op")
    data = rig.reg.config.model_dump(mode="json", by_alias=True)
    data["tenants"][0]["sites"][0]["id"] = "face-1302"  # renamed, and the CO sensor removed
    sensors = data["tenants"][0]["sites"][0]["devices"][0]["sensors"]
    data["tenants"][0]["sites"][0]["devices"][0]["sensors"] = [
        x for x in sensors if x["id"] != "co"
    ]
    profiles, packs = load_profiles(ROOT / "profiles")
    with caplog.at_level(logging.WARNING, logger="alerts.notify.notifier"):
        rig.notifier.set_registry(
            build_registry(HubConfig.model_validate(data), profiles, packs, "renamed.yaml")
        )
    said = [r.getMessage() for r in caplog.records if r.name == "alerts.notify.notifier"]
    assert said == [
        "subscription 'face' of north-coal hears or holds nothing of them: sites 'face-1301'"
        " not in tenant 'north-coal'",
        "silence 'co-work' of north-coal hears or holds nothing of them: sensors 'co' not in"
        " tenant 'north-coal'",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alerts.notify.notifier"):
        rig.notifier.set_registry(rig.reg)  # back as it was: nothing to say
    assert [r for r in caplog.records if r.name == "alerts.notify.notifier"] == []


async def test_batched_webhook_carries_many_notifications_and_retries_them_together(rig):
    secret = "batch-secret"
    with WebhookReceiver(secret=secret) as receiver:
        channel = {"type": "webhook", "url": receiver.url, "secret": secret, "batch_max": 50}
        rig.subscribe(id="ews", channel=channel)
        receiver.respond_with(503, times=1)  # the first try fails: all of it comes again
        for sid in ("ch4-t0", "ch4-t1", "ch4-t2", "co"):
            rig.feed(sid, [0.0, 40.0])
        rig.notifier.route()
        assert await rig.notifier.deliver_due() == 0
        assert await rig.notifier.deliver_due(rig.now + 60_000) == 4
        posts = receiver.requests
        assert len(posts) == 2  # the failed try and its retry: one POST each
        assert all(p.signature_ok for p in posts)
        bodies = [p.json()["notifications"] for p in posts]
        keys = [[n["key"] for n in b] for b in bodies]
        assert keys[0] == keys[1] and len(set(keys[1])) == 4
        assert posts[0].key == posts[1].key and posts[0].key.startswith("batch-")
        assert {n["events"][0]["sensor"] for n in bodies[1]} == {"ch4-t0", "ch4-t1", "ch4-t2", "co"}
        delivered = rig.notifier.store.outbox(None, "delivered")
        assert sorted(r[1] for r in delivered) == sorted(keys[1])


async def test_an_escalation_held_by_a_silence_goes_out_when_the_silence_ends(rig):
    rig.notifier.put(
        "escalation",
        "north-coal",
        EscalationPolicySpec.model_validate(
            {"id": "one", "steps": [{"after_s": 300, "channel": {"type": "sse"}}]}
        ),
        "op",
    )
    rig.subscribe(id="duty", escalation="one", match={"events": ["escalation"]})
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    rig.notifier.put(
        "silence",
        "north-coal",
        SilenceSpec(id="s", comment="works", starts=rig.now - 1, ends=rig.now + 400_000),
        "op",
    )
    assert await rig.pump(301) == []  # due, but silenced
    notes = await rig.pump(100)  # the silence is over and the alarm still unacknowledged
    assert keys(notes) == [f"north-coal/duty:x{raised.alarm_id}:0"]
    assert await rig.pump(60) == []  # once


async def test_a_row_with_an_unreadable_channel_is_dead_and_blocks_nothing(rig):
    rig.subscribe(id="all")
    with rig.notifier.outbox.transaction() as con:
        rig.notifier.store.add_outbox_rows(
            con,
            [
                (
                    "bad",
                    "north-coal",
                    "s",
                    "north-coal/x",
                    '{"type": "pigeon"}',
                    "x",
                    "[]",
                    0,
                    0,
                    None,
                    0,
                    None,
                )
            ],
        )
    rig.feed("ch4-t1", [0.3, 1.1])
    notes = await rig.pump()
    assert keys(notes) == ["north-coal/all:e1"]
    dead = rig.notifier.store.outbox(None, "dead")
    assert [(bare(r[1]), "unreadable channel" in r[10]) for r in dead] == [("bad", True)]


def test_subscriptions_know_every_alarm_kind_the_hub_raises():
    from alerts.table import ALARM_KIND_NAMES
    from telemetry.notifyconfig import ALARM_KINDS

    assert sorted(ALARM_KINDS) == sorted(ALARM_KIND_NAMES.values())


@pytest.mark.parametrize("clause", ["full_tenants", "only_local"])
def test_a_row_whose_channel_is_not_json_breaks_no_take(rig, clause):
    """The takes that let the hub's own channels through a full tenant or a full outbox read
    each row's channel type; a row whose channel is not JSON at all (a damaged one) is simply
    not local, never an error for everyone's take."""
    with rig.notifier.outbox.transaction() as con:
        rig.notifier.store.add_outbox_rows(
            con,
            [
                (
                    "junk",
                    "north-coal",
                    "s",
                    "north-coal/x",
                    "not json",
                    "x",
                    "[]",
                    0,
                    0,
                    None,
                    0,
                    None,
                ),
                (
                    "wall",
                    "north-coal",
                    "s",
                    "north-coal/w",
                    '{"type": "sse"}',
                    "x",
                    "[]",
                    0,
                    0,
                    None,
                    0,
                    None,
                ),
                (
                    "guarded-wall",  # an enterprise's sse channel, wrapped: local all the same
                    "north-coal",
                    "s",
                    "north-coal/g",
                    guarded_json('{"type": "sse"}'),
                    "x",
                    "[]",
                    0,
                    0,
                    None,
                    0,
                    None,
                ),
            ],
        )
    kw = {"full_tenants": ["north-coal"]} if clause == "full_tenants" else {"only_local": True}
    taken = rig.notifier.store.take_due(10**15, 100, **kw)
    assert sorted(r[1] for r in taken) == ["guarded-wall", "wall"]


async def test_an_alarm_back_from_a_shelve_gets_no_stale_repeat_on_top(rig):
    """The repeat that fell due during a shelve was sent a second after the alarm came back
    from it, beside the 'raised' it is told as: two notices at once, then the next repeat
    (helper-69). The one due then is taken as said; the next keeps its time."""
    rig.subscribe(id="rep", repeat_s=30)
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1
    start = rig.now
    rig.desk.act(
        raised.alarm_id, "shelve", actor="op", now=rig.now, until=rig.now + 100_000, note="x"
    )
    assert await rig.pump(60) == []  # repeats 1 and 2 fall in the shelve: none
    rig.now = start + 101_000
    rig.desk.tick(rig.now)
    back = await rig.pump()
    assert [e["annunciated"] for n in back for e in n.body["events"]] == ["raised"]  # type: ignore[union-attr,index]
    assert await rig.pump(1) == []  # repeat 3 (due at 90 s) is not sent on top
    assert [bare(n.key) for n in await rig.pump(19)] == [f"north-coal/rep:r{raised.alarm_id}:4"]


def test_a_vehicles_alarm_is_named_by_its_plate_in_the_subject_and_on_the_alarm_topic(rig):
    """helper-116: an e-mail's subject said `tanker-01.speed`, and the alarm topic and the live
    stream carried no plate at all."""
    from alerts.alarmevent import AlarmEvent
    from alerts.notify.enqueue import _subject

    event = {"tier": "orange", "tenant": "acme-chem", "tenant_name": "", "site": "vehicles"}
    event |= {"sensor": "tanker-01.speed", "location": "苏A·D1234", "alarm_kind": "overspeed"}
    event |= {"level_name": "overspeed", "kind": "raised"}
    assert _subject([event]) == "[ORANGE] acme-chem vehicles 苏A·D1234 overspeed overspeed raised"
    # a name folded in YAML ends with a line break: the subject stays one line (helper-118)
    event["tenant_name"] = "华信\n化工\n"
    assert _subject([event]).startswith("[ORANGE] 华信 化工 vehicles 苏A·D1234 ")
    ev = AlarmEvent(7, "raised", "acme-chem", "vehicles", "tanker-01", "tanker-01.speed", "fleet",
                    "overspeed", 1, "overspeed", "orange", "", 75.0, T0, T0)  # fmt: skip
    body = ev.to_json(rig.reg)
    assert (body["location"], body["tenant_name"], body["sensor"]) == (
        "苏A·D1234",
        "",
        "tanker-01.speed",
    )
    assert "location" not in ev.to_json()  # (the stored form is unchanged)
    # its device's name is its plate on every channel, as in the alarm API (helper-241: "")
    from alerts.notify.enqueue import _registry_fields
    from alerts.notify.stages import EventView

    assert body["device_name"] == "苏A·D1234"
    view = EventView(7, 1, "raised", "acme-chem", "vehicles", "tanker-01", "tanker-01.speed",
                     "speed", "overspeed", "orange", "unack", True)  # fmt: skip
    assert _registry_fields(rig.reg, view)[2] == "苏A·D1234"
    # a gateway's alarm names no device, even one whose id a vehicle has
    gw = view._replace(sensor="gateway:tanker-01", alarm_kind="offline")
    assert _registry_fields(rig.reg, gw)[2] == ""


CENTRE_YAML = """
notify:
  subscriptions:
    - {id: city, match: {tiers: [red]}, channel: {type: webhook, url: "http://127.0.0.1:9/h"},
       escalation: duty}
  escalation_policies:
    - {id: duty, steps: [{after_s: 60, channel: {type: email, to: [chief@city.example]}}]}
"""


async def test_the_centres_own_subscription_hears_every_tenant_and_one_added_later(tmp_path):
    """helper-115: a subscription needed a tenant, so a centre kept one per enterprise, and an
    enterprise added while the hub ran reached nobody. `notify.subscriptions` hear every
    tenant's alarms (its escalation policy too); an enterprise key's outbox list does not show
    them (their errors named the centre's receiver)."""
    from notify_rig import Rig

    rig = Rig(tmp_path, CENTRE_YAML)
    try:
        store = rig.notifier.catalog.store
        rig.feed("ch4-t1", [0.3, 1.1, 1.6])  # red
        await rig.pump()
        subs = {(bare(r[1]).split(":")[0], bare(r[1]).split(":")[1][0]) for r in store.outbox(None)}
        assert subs == {("north-coal/*city", "e")}
        await rig.pump(61)  # the policy's step: not acknowledged within 60 s
        subs = {(bare(r[1]).split(":")[0], bare(r[1]).split(":")[1][0]) for r in store.outbox(None)}
        assert subs == {("north-coal/*city", "e"), ("north-coal/*city", "x")}
        # an enterprise added while the hub runs: heard as well
        text = rig.reg.config.model_dump(mode="json", by_alias=True)
        text["tenants"].append(
            {
                "id": "late-chem",
                "sites": [
                    {
                        "id": "farm",
                        "devices": [
                            {
                                "id": "d",
                                "profile": "coal-substation",
                                "sensors": [
                                    {
                                        "id": "late-ch4",
                                        "point": "ch4_t1",
                                        "kind": "methane",
                                        "rule": "coal-methane.face-t1",
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
        from hazardhub.settings import load_profiles as _load

        profiles, packs = _load(ROOT / "profiles")
        reg = build_registry(HubConfig.model_validate(text), profiles, packs)
        rig.reg = reg
        rig.notifier.set_registry(reg)
        assert ("late-chem", "*duty") in rig.notifier.catalog.policies
        assert [s.id for s in rig.notifier.catalog.subs["late-chem"]] == ["*city"]
        # the outbox as the enterprise lists it: not the centre's rows; the centre's: all, and
        # those of one tenant when it asks for it (helper-122: `?tenant=` hid them)
        assert store.outbox(["north-coal"]) == []
        assert len(store.outbox(None)) == 2
        assert len(store.outbox(["north-coal"], centre=True)) == 2
    finally:
        rig.notifier.close()
        rig.db.close()


def test_the_centres_subscriptions_are_checked_at_load():
    """Their policies, their sensor kinds and sites (a typo heard nothing, helper-122), and
    their channels: an sse or mqtt channel is the tenant's own stream or topic, which the
    enterprise reads (helper-122)."""
    hook = {"type": "webhook", "url": "https://centre.example/h"}

    def centre(**sub: object) -> dict[str, object]:
        return {"version": 1, "notify": {"subscriptions": [{"id": "c", "channel": hook, **sub}]}}

    with pytest.raises(ValueError, match="names no escalation policy"):
        HubConfig.model_validate(centre(escalation="nope"))
    with pytest.raises(ValueError, match="'methan'"):
        HubConfig.model_validate(centre(match={"sensor_kinds": ["methan"]}))
    for kind in ("sse", "mqtt"):
        with pytest.raises(ValueError, match="the enterprise reads"):
            HubConfig.model_validate(centre(channel={"type": kind}))
    extra = (
        "notify:\n  subscriptions:\n    - {id: c, match: {sites: [face-1310]},\n"
        "       channel: {type: webhook, url: 'https://c.example/h'}}"
    )
    with pytest.raises(ConfigError, match=r"face-1310.*is no tenant's site"):
        mine_registry(1502, 1.0, extra)


async def test_an_enterprise_whose_webhooks_hang_does_not_hold_the_centres(tmp_path):
    """helper-122: the centre's notification of an enterprise's red alarm counted against that
    enterprise's delivery share; its own webhooks, hanging, held it for minutes. The centre's
    rows of a tenant have a share of their own."""
    import asyncio
    import time

    from notify_rig import Rig

    tarpits = [WebhookReceiver().start() for _ in range(3)]
    centre = WebhookReceiver().start()
    try:
        for t in tarpits:
            t.respond_with(200, delay_s=10.0)  # accepts, answers late (released by stop)
        extra = (
            "notify:\n  max_in_flight: 32\n  enterprise_webhook_networks: [127.0.0.0/8]\n"
            "  subscriptions:\n"
            f"    - {{id: city, match: {{tiers: [red]}}, channel: {{type: webhook, "
            f"url: '{centre.url}'}}}}\n"
        )
        rig = Rig(tmp_path, extra)
        try:
            for i in range(12):  # 3 receivers x their 8 in flight: the tenant's share (8) full
                url = f"{tarpits[i % 3].url}/{i}"
                spec = SubscriptionSpec.model_validate(
                    {"id": f"e{i}", "channel": {"type": "webhook", "url": url, "timeout_s": 30}}
                )
                rig.notifier.put("subscription", "north-coal", spec, "coal", owner="enterprise")
            rig.feed("ch4-t1", [0.3, 1.1, 1.6])  # red: 12 enterprise rows, then the centre's
            rig.notifier.route()
            start = time.monotonic()
            while not centre.requests and time.monotonic() - start < 5:
                await rig.notifier.deliver_due(wait=False)
                await asyncio.sleep(0.05)
            assert centre.requests, "the centre's notification waited behind the enterprise's"
            assert time.monotonic() - start < 5
        finally:
            for t in tarpits:
                t.stop()
            rig.notifier.close()
            rig.db.close()
    finally:
        centre.stop()


def test_a_group_keeps_its_subjects_head_whatever_the_names_hold():
    """helper-122: a tenant named `A (+86) 化工` got the subject `[RED] A (+1)` when its group
    grew: the head was cut at the first ` (+`."""
    import sqlite3

    from alerts.notify.store import NotifyStore

    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, subscription TEXT, tenant TEXT, site TEXT,"
        " open_until INTEGER, status TEXT, events TEXT, subject TEXT, arrival INTEGER)"
    )
    head = "[RED] A (+86) 化工 farm t101 above hihi raised"
    con.execute(
        "INSERT INTO outbox VALUES (1, 'a/s', 'a', 'farm', 99, 'pending', '[{}]', ?, 5)", (head,)
    )
    for _ in range(2):
        assert NotifyStore.append_to_group(con, "a/s", "a", "farm", 10, {"arrival": 6}, 100)
    assert con.execute("SELECT subject FROM outbox").fetchone()[0] == f"{head} (+2)"
