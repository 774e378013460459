"""Inhibition by a higher alarm of the same sensor is for what that alarm explains: a sensor's
`above` alarm holds back its trend alarms (early warning, rate of rise) of a lower tier; no other
kind inhibits or is inhibited (a tanker's fatigue during its overspeed, helper-241). A raise held
back (by that alarm, by a silence) is remembered in the outbox database: the alarm is told as
`released` when the `above` alarm clears or steps down to its tier while it stays active and
unacknowledged, and the first news a subscription hears of it otherwise is annunciated as its
raise. The stages table-driven; the pipeline on real SQLite with an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.kinds import ALARM_KIND_SIDES
from alerts.notify.channels import Notification
from alerts.notify.stages import EventView, frees_trends, inhibited_by
from alerts.table import ABOVE, EARLY
from alerts.vehicles.alarms import FleetChange
from alerts.vehicles.safety import SafetyChange
from telemetry.notifyconfig import SilenceSpec

from notify_rig import Rig, bare


def _view(alarm_kind: str, tier: str, kind: str = "raised", isa: str = "unack") -> EventView:
    return EventView(
        1, 1, kind, "t", "s", "d", "x", "methane", alarm_kind, tier, isa, kind != "cleared"
    )


# (the event's alarm kind, tier, journal kind, the sensor's active alarms, inhibited)
_CASES: list[tuple[str, str, str, list[tuple[str, str]], bool]] = [
    # what the `above` alarm explains: the trends of the value rising, below its tier
    ("early_warning", "blue", "raised", [("above", "red")], True),
    ("rate", "yellow", "raised", [("above", "orange")], True),
    ("early_warning", "blue", "escalated", [("above", "yellow")], True),
    ("early_warning", "blue", "unshelved", [("above", "red")], True),  # told as raised
    ("early_warning", "red", "raised", [("above", "orange")], False),  # not below it
    ("early_warning", "blue", "raised", [("above", "blue")], False),
    ("early_warning", "blue", "cleared", [("above", "red")], False),  # an end: never
    ("early_warning", "blue", "deescalated", [("above", "red")], False),
    ("early_warning", "blue", "acknowledged", [("above", "red")], False),  # lifecycle
    # a below alarm explains no rise
    ("early_warning", "blue", "raised", [("below", "red")], False),
    ("rate", "yellow", "raised", [("below", "red")], False),
    # independent conditions: never inhibited, never inhibiting
    ("fault", "yellow", "raised", [("above", "red")], False),
    ("frozen", "yellow", "raised", [("above", "red")], False),
    ("maintenance", "yellow", "raised", [("above", "red")], False),
    ("calibration_due", "yellow", "raised", [("above", "red")], False),
    ("action_failed", "orange", "raised", [("above", "red")], False),
    ("below", "yellow", "raised", [("above", "red")], False),
    ("above", "yellow", "raised", [("rate", "red")], False),
    ("data_lost", "yellow", "raised", [("no_data", "orange")], False),
    # a vehicle's, all on its speed sensor
    ("dsm_fatigue", "yellow", "raised", [("overspeed", "orange")], False),
    ("fatigue", "orange", "raised", [("terminal_emergency", "red")], False),
    ("overspeed", "orange", "raised", [("terminal_emergency", "red")], False),
    ("adas_forward_collision", "yellow", "raised", [("forbidden_area", "red")], False),
    ("corridor", "yellow", "raised", [("night_ban", "red")], False),
    ("terminal_emergency", "red", "raised", [("dsm_fatigue", "red")], False),
]


@pytest.mark.parametrize(("alarm_kind", "tier", "kind", "active", "inhibited"), _CASES)
def test_what_inhibits_what(
    alarm_kind: str, tier: str, kind: str, active: list[tuple[str, str]], inhibited: bool
) -> None:
    got = inhibited_by(_view(alarm_kind, tier, kind), {"x": active})
    assert (got is not None) == inhibited, got


@pytest.mark.parametrize(
    ("alarm_kind", "kind", "frees"),
    [
        ("above", "cleared", True),
        ("above", "deescalated", True),
        ("above", "escalated", False),
        ("above", "raised", False),
        ("below", "cleared", False),
        ("early_warning", "cleared", False),
        ("overspeed", "cleared", False),
    ],
)
def test_what_ends_a_hold_by_a_higher_alarm(alarm_kind: str, kind: str, frees: bool) -> None:
    assert (frees_trends(_view(alarm_kind, "red", kind)) == "higher:x") == frees


def _events(notes: list[Notification], sub: str) -> list[dict[str, Any]]:
    return [
        e
        for n in notes
        if str(n.body["subscription"]).endswith(f"/{sub}")
        for e in n.body["events"]  # type: ignore[attr-defined]
    ]


def _said(notes: list[Notification], sub: str = "all") -> list[tuple[str, str, str]]:
    """(alarm kind, kind, annunciated) of the events told to `sub`."""
    return [(e["alarm_kind"], e["kind"], e["annunciated"]) for e in _events(notes, sub)]


async def test_a_tankers_fatigue_during_its_overspeed_is_told_at_once(rig: Rig) -> None:
    rig.subscribe(tenant="acme-chem", id="all")
    speed = rig.reg.sensor("tanker-01.speed").index
    over = FleetChange(speed, "overspeed", 1, rig.now, 92.0, limit_kmh=80.0)
    rig.book.apply_fleet([over], rig.now)
    assert _said(await rig.pump()) == [("overspeed", "raised", "raised")]
    side = ALARM_KIND_SIDES["dsm_fatigue"]
    tired = SafetyChange(speed, "dsm_fatigue", side, 1, "yellow", rig.now + 1000, "")
    rig.book.apply_fleet([], rig.now + 1000, safety=[tired])
    assert _said(await rig.pump(1)) == [("dsm_fatigue", "raised", "raised")]


def _early_under_red(rig: Rig) -> int:
    """ch4-t1's red power-cut alarm, then its early warning (blue) beside it: held back."""
    rig.transition("ch4-t1", ABOVE, 0, 2)
    (early,) = rig.transition("ch4-t1", EARLY, 0, 1)
    return int(early.alarm_id)


async def test_an_early_warning_held_by_its_red_alarm_is_released_when_that_clears(
    rig: Rig,
) -> None:
    rig.subscribe(id="all", repeat_s=600)
    alarm = _early_under_red(rig)
    assert _said(await rig.pump()) == [("above", "raised", "raised")]
    rig.transition("ch4-t1", ABOVE, 2, 1)  # a step down to yellow: still above the blue warning
    assert _said(await rig.pump(1)) == []  # (a step down: not among the events it takes)
    rig.transition("ch4-t1", ABOVE, 1, 0)  # cleared: the warning is still on, unacknowledged
    notes = await rig.pump(1)
    assert _said(notes) == [
        ("above", "cleared", "cleared"),
        ("early_warning", "released", "raised"),
    ]
    assert bare(notes[1].key) == f"north-coal/all:eu{alarm}"
    assert await rig.pump(60) == []  # once
    assert rig.notifier.outbox.query("SELECT * FROM held") == []


async def test_no_release_of_an_early_warning_acknowledged_or_ended_meanwhile(rig: Rig) -> None:
    rig.subscribe(id="all")
    alarm = _early_under_red(rig)
    await rig.pump()
    rig.desk.act(alarm, "acknowledge", actor="op", now=rig.now)
    rig.transition("ch4-t1", ABOVE, 2, 0)
    assert _said(await rig.pump(1)) == [("above", "cleared", "cleared")]  # not its ack either
    # and ended meanwhile: its clear is not told to whom never heard of it
    rig.transition("ch4-t2", ABOVE, 0, 2)
    rig.transition("ch4-t2", EARLY, 0, 1)
    await rig.pump(1)
    rig.transition("ch4-t2", EARLY, 1, 0)
    rig.transition("ch4-t2", ABOVE, 2, 0)
    assert _said(await rig.pump(1)) == [("above", "cleared", "cleared")]
    assert await rig.pump(600) == []


async def test_a_raise_held_back_is_annunciated_raised_when_it_escalates(rig: Rig) -> None:
    """Raised at yellow in a silence, escalated to red after it: the subscription's first news
    of the alarm is its raise (a receiver drops an escalation of an alarm it does not know)."""
    rig.subscribe(id="all")
    works = SilenceSpec(id="w", comment="works", starts=rig.now - 1, ends=rig.now + 60_000)
    rig.notifier.put("silence", "north-coal", works, "op")
    rig.transition("ch4-t1", ABOVE, 0, 1)
    assert await rig.pump() == []
    rig.now += 61_000
    rig.transition("ch4-t1", ABOVE, 1, 2)
    assert _said(await rig.pump()) == [("above", "escalated", "raised")]
    rig.transition("ch4-t1", ABOVE, 2, 0)  # told: the next is what it is
    assert _said(await rig.pump(1)) == [("above", "cleared", "cleared")]


async def test_an_acknowledged_alarm_never_told_is_told_as_raised_when_it_escalates(
    rig: Rig,
) -> None:
    """Raised in a silence and acknowledged: the hold outlives the outbox's
    pruning (the alarm is still active), so that its escalation, unacknowledged again, is the
    subscription's first news of it, as its raise."""
    rig.subscribe(id="all")
    works = SilenceSpec(id="w", comment="works", starts=rig.now - 1, ends=rig.now + 60_000)
    rig.notifier.put("silence", "north-coal", works, "op")
    (raised,) = rig.transition("ch4-t1", ABOVE, 0, 1)
    await rig.pump()
    for centre in (False, True):  # by the enterprise and the centre: waiting for nobody
        rig.desk.act(raised.alarm_id, "acknowledge", actor="op", now=rig.now, centre=centre)
    assert await rig.pump(61) == []  # its acknowledgements: not told either
    rig.notifier.prune()
    rig.transition("ch4-t1", ABOVE, 1, 2)
    assert _said(await rig.pump(1)) == [("above", "escalated", "raised")]


async def test_a_repeat_after_the_silence_that_held_the_raise_is_annunciated_raised(
    rig: Rig,
) -> None:
    rig.subscribe(id="all", repeat_s=100)
    works = SilenceSpec(id="w", comment="works", starts=rig.now - 1, ends=rig.now + 150_000)
    rig.notifier.put("silence", "north-coal", works, "op")
    rig.transition("ch4-t1", ABOVE, 0, 1)
    assert await rig.pump() == [] and await rig.pump(101) == []  # its first repeat: silenced
    assert _said(await rig.pump(100)) == [("above", "repeat", "raised")]
    assert _said(await rig.pump(100)) == [("above", "repeat", "repeat")]


async def test_a_restart_between_the_hold_and_the_release_still_releases_once(
    rig: Rig,
) -> None:
    rig.subscribe(id="all")
    alarm = _early_under_red(rig)
    await rig.pump()
    rig.notifier.close()
    rig.notifier = rig.new_notifier()  # the hub restarted: the hold is in the outbox database
    rig.transition("ch4-t1", ABOVE, 2, 0)
    notes = await rig.pump(1)
    assert _said(notes) == [
        ("above", "cleared", "cleared"),
        ("early_warning", "released", "raised"),
    ]
    assert [bare(n.key) for n in notes][1] == f"north-coal/all:eu{alarm}"
    rig.notifier.close()
    rig.notifier = rig.new_notifier()
    assert await rig.pump(600) == []


async def test_the_centres_subscription_is_released_what_only_the_enterprise_acknowledged(
    tmp_path: Any,
) -> None:
    """The enterprise acknowledged the held early warning: its subscription is not told when
    the red alarm clears; the centre's own (`*city`), which waits for the centre's
    acknowledgement, is."""
    centre = 'notify:\n  subscriptions:\n    - {id: city, channel: {type: webhook, url: "http://127.0.0.1:9/h"}}\n'
    rig = Rig(tmp_path, centre)
    try:
        rig.subscribe(id="all")
        alarm = _early_under_red(rig)
        await rig.pump()
        rig.desk.act(alarm, "acknowledge", actor="coal", now=rig.now, centre=False)
        rig.transition("ch4-t1", ABOVE, 2, 0)
        assert _said(await rig.pump(1), "all") == [("above", "cleared", "cleared")]
        # (the centre's webhook is not reachable here: its rows stay in the outbox)
        released = [bare(r[1]) for r in rig.notifier.store.outbox(None) if ":eu" in r[1]]
        assert released == [f"north-coal/*city:eu{alarm}"]
    finally:
        rig.notifier.close()
        rig.db.close()
