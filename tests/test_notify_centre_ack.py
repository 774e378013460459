"""The supervising centre acknowledges apart from the enterprise: the enterprise's
acknowledgement stops the enterprise's repeats and escalation steps, never the centre's own
subscriptions' (`notify.subscriptions`, `*<id>`), which stop on the centre's; and the reverse
(real SQLite, the notify rig, an injected clock)."""

from __future__ import annotations

from typing import Any

import pytest

from notify_rig import Rig, bare, told

CENTRE_YAML = """
notify:
  subscriptions:
    - {id: city, match: {tiers: [red]}, channel: {type: webhook, url: "http://127.0.0.1:9/h"},
       repeat_s: 60, escalation: duty}
  escalation_policies:
    - {id: duty, steps: [{after_s: 90, channel: {type: email, to: [chief@city.example]}}]}
"""
ENTERPRISE_POLICY: dict[str, Any] = {
    "id": "shift",
    "steps": [{"after_s": 90, "channel": {"type": "sse"}}],
}


@pytest.fixture
def rig(tmp_path: Any) -> Any:
    from telemetry.notifyconfig import EscalationPolicySpec

    r = Rig(tmp_path, CENTRE_YAML)
    r.notifier.put(
        "escalation", "north-coal", EscalationPolicySpec.model_validate(ENTERPRISE_POLICY), "coal"
    )
    r.subscribe(id="duty", match={"tiers": ["red"]}, repeat_s=60, escalation="shift")
    try:
        yield r
    finally:
        r.notifier.close()
        r.db.close()


def centre_keys(rig: Rig) -> set[str]:
    """The centre's timer rows queued (its webhook and e-mail are not reachable here: the rows
    stay in the outbox), as `r{n}` and `x{step}`."""
    rows = rig.notifier.store.outbox(None)
    out = set()
    for r in rows:
        key = bare(r[1])
        if key.startswith("north-coal/*city:") and key.split(":")[1][0] in "rx":
            out.add(key.split(":")[1][0] + key.split(":")[2])
    return out


def acknowledge(rig: Rig, alarm_id: int, *, centre: bool) -> str:
    event = rig.desk.act(
        alarm_id, "acknowledge", actor="op" if centre else "coal", now=rig.now, centre=centre
    )
    return event.kind


async def test_the_enterprises_ack_leaves_the_centre_repeating_and_escalating(rig):
    rig.feed("ch4-t1", [0.3, 1.1, 1.6])  # red
    await rig.pump()
    (row,) = rig.db.active_alarms()
    assert acknowledge(rig, row.id, centre=False) == "acknowledged"
    notes = await rig.pump(61)
    assert told(notes, "duty") == []  # the enterprise's: its own acknowledgement stops them
    assert centre_keys(rig) == {"r1"}  # the centre's duty officer is still told
    notes = await rig.pump(30)
    assert told(notes, "duty") == []
    assert centre_keys(rig) == {"r1", "x0"}  # and escalated to the chief
    assert acknowledge(rig, row.id, centre=True) == "centre_acknowledged"
    await rig.pump(300)
    assert centre_keys(rig) == {"r1", "x0"}  # the centre's acknowledgement stops them
    after = rig.db.get_alarm(row.id)
    assert after is not None and (after.isa_state, after.acked, after.centre_acked) == (
        "ack",
        True,
        True,
    )


async def test_the_centres_ack_leaves_the_enterprise_repeating_and_escalating(rig):
    """At night nobody answers at the enterprise: the centre acknowledging must not silence
    the enterprise's escalation to its own manager."""
    rig.feed("ch4-t1", [0.3, 1.1, 1.6])
    await rig.pump()
    (row,) = rig.db.active_alarms()
    assert acknowledge(rig, row.id, centre=True) == "centre_acknowledged"
    after = rig.db.get_alarm(row.id)
    assert after is not None and (after.isa_state, after.acked) == ("unack", False)
    notes = await rig.pump(61)
    assert told(notes, "duty") == [("ch4-t1", "repeat")]
    notes = await rig.pump(30)
    assert told(notes, "duty") == [("ch4-t1", "escalation")]
    assert centre_keys(rig) == set()  # the centre acknowledged before its first repeat
    assert acknowledge(rig, row.id, centre=False) == "acknowledged"
    assert told(await rig.pump(300), "duty") == []


async def test_a_held_alarm_is_released_to_whom_has_not_acknowledged(tmp_path):
    """A gateway's offline alarm held a point's comm loss back from the centre and from
    the enterprise; the enterprise acknowledged it meanwhile. When the gateway is back, the
    centre, which has not, is told of it as `released`; the enterprise is not."""
    from alerts.gateways import GatewayChange
    from telemetry.quality import Quality

    rig = Rig(tmp_path, CENTRE_ALL_YAML)
    try:
        rig.subscribe(id="comm", match={"alarm_kinds": ["no_data"]})

        def gateway(offline: bool) -> None:
            rig.book.apply_gateways(
                [GatewayChange("north-coal", "face-1301", "gw1", offline, rig.now)], rig.now
            )

        gateway(True)
        for sid in ("ch4-t0", "ch4-t1", "ch4-t2", "co", "feed"):
            rig.feed(sid, [float("nan")], quality=int(Quality.COMM_LOSS))
        await rig.pump()
        (point,) = [a for a in rig.db.active_alarms() if a.sensor == "ch4-t1"]
        acknowledge(rig, point.id, centre=False)
        gateway(False)
        rig.feed("co", [5.0])  # its device answers: its comm loss clears too
        assert ("ch4-t1", "released") not in told(await rig.pump(1), "comm")
        released = [bare(r[1]) for r in rig.notifier.store.outbox(None) if ":eu" in r[1]]
        assert f"north-coal/*comm:eu{point.id}" in released
        assert f"north-coal/comm:eu{point.id}" not in released
        assert "north-coal/comm:eu" in " ".join(released)  # (the points it did not acknowledge)
    finally:
        rig.notifier.close()
        rig.db.close()


CENTRE_ALL_YAML = """
notify:
  subscriptions:
    - {id: comm, match: {alarm_kinds: [no_data]}, channel: {type: webhook, url: "http://127.0.0.1:9/h"}}
"""
