"""Acknowledging many alarms at once over HTTP (`POST /api/v1/alarms/acknowledge`, `api.bulkack`):
a night dispatcher acknowledged a chattering methane point's 74 alarms one by one. Each alarm is
journaled as if acknowledged alone; per id the answer says what happened; another tenant's id is
not found and left alone; a red one needs a note; at most 500 per call.

Alarms come from real readings through `evaluate` and `AlarmBook` (`test_api_alarms.Hub`)."""

from __future__ import annotations

from test_api_alarms import MISSING, Hub, hub, journal

from api.bulkack import BULK_MAX, RED_NEEDS_NOTE

__all__ = ["hub"]  # the fixture


def chatter(h: Hub, n: int) -> list[int]:
    """`n` yellow activations of T1, each returned to normal unacknowledged (rtn_unack)."""
    ids = []
    for _ in range(n):
        raised, _cleared = h.feed("ch4-t1", [1.1, 0.5])
        ids.append(raised.alarm_id)
    return ids


async def test_a_chattering_points_alarms_are_acknowledged_at_once_each_journaled(
    hub: Hub,
) -> None:
    yellow = chatter(hub, 5)
    red = hub.raise_alarm("ch4-t2", 1.2)  # the return airway's power cut: red
    chem = hub.raise_alarm("tanker-01.speed", 90)  # another enterprise's
    done = hub.raise_alarm("co", 30)
    assert (await hub.post(f"/alarms/{done}/acknowledge", who="coal")).status_code == 200
    away = hub.raise_alarm("ch4-t0", 2.0)
    r = await hub.post("/sensors/ch4-t0/service", {"in_service": False, "reason": "recalibration"})
    assert r.status_code == 200, r.text
    chem_before = await hub.alarm(chem)
    published = len(hub.published)

    ids = [*yellow, red, chem, MISSING, done, away, yellow[0]]  # the first twice
    r = await hub.post("/alarms/acknowledge", {"ids": ids, "note": ""}, who="coal")
    assert r.status_code == 200, r.text
    body = r.json()
    got = {x["id"]: (x["result"], x["reason"], x["isa_state"]) for x in body["results"]}
    assert [x["id"] for x in body["results"]] == ids[:-1]  # in order, each once
    assert all(got[i] == ("acknowledged", None, "normal") for i in yellow)
    assert got[red] == ("refused", RED_NEEDS_NOTE, "unack")
    assert got[chem] == got[MISSING] == ("not_found", None, None)  # never told it exists
    assert got[done] == ("already", None, "ack")
    assert got[away] == ("refused", "the sensor is out of service", "out_of_service")
    assert body["counts"] == {"acknowledged": 5, "already": 1, "not_found": 2, "refused": 2}
    # each alarm journaled on its own, by the key, as if acknowledged alone; published once each
    for i in yellow:
        a = await hub.alarm(i)
        assert (a["isa_state"], a["acked"]) == ("normal", True)
        assert journal(a)[-1] == ("acknowledged", "coal", "", "normal")
    assert [(e.alarm_id, e.kind, e.actor) for e in hub.published[published:]] == [
        (i, "acknowledged", "coal") for i in yellow
    ]
    assert await hub.alarm(chem) == chem_before
    assert not (await hub.alarm(red))["acked"]

    # a red alarm with a note saying why, journaled on it
    note = "T2 探头故障，已派人 sensor fault, crew sent"
    r = await hub.post("/alarms/acknowledge", {"ids": [red, *yellow], "note": note}, who="coal")
    assert r.json()["counts"] == {"acknowledged": 1, "already": 5, "not_found": 0, "refused": 0}
    assert journal(await hub.alarm(red))[-1] == ("acknowledged", "coal", note, "ack")
    # a centre's key acknowledges any tenant's: the centre's acknowledgement, which leaves
    # the site's (its ISA state) to the enterprise
    r = await hub.post("/alarms/acknowledge", {"ids": [chem]}, who="op")
    assert r.json()["results"] == [
        {
            "id": chem,
            "result": "acknowledged",
            "reason": None,
            "isa_state": "unack",
            "centre_acked": True,
        }
    ]
    assert (await hub.alarm(chem))["centre_acked"] is True
    r = await hub.post("/alarms/acknowledge", {"ids": [chem]}, who="op")
    assert r.json()["counts"]["already"] == 1


async def test_more_than_the_cap_an_empty_list_or_a_viewer_is_refused(hub: Hub) -> None:
    (one,) = chatter(hub, 1)
    r = await hub.post("/alarms/acknowledge", {"ids": list(range(1, BULK_MAX + 2))})
    assert r.status_code == 422, r.text
    assert f"at most {BULK_MAX} items" in r.json()["detail"], r.text
    for body in ({"ids": []}, {"ids": [0]}, {"ids": [one], "until": 1}, {"note": "n"}):
        r = await hub.post("/alarms/acknowledge", body)
        assert r.status_code == 422, (body, r.text)
    r = await hub.post("/alarms/acknowledge", {"ids": [one]}, who="viewer")
    assert (r.status_code, r.json()["detail"]) == (403, "this key may only read")
    assert not (await hub.alarm(one))["acked"]  # nothing done by the refused calls
    r = await hub.post("/alarms/acknowledge", {"ids": list(range(1, BULK_MAX + 1))})
    assert r.status_code == 200 and r.json()["counts"]["acknowledged"] == 1


async def test_a_red_alarm_acknowledged_alone_needs_a_note_too(hub: Hub) -> None:
    """A red alarm acknowledged alone asked nothing while in bulk it needed a note: alone it is
    422 without one (or with spaces only), saying why in Chinese and English, and nothing is
    journaled; with one it is acknowledged and the note journaled. A red one returned to normal
    counts (it reached red); a yellow one needs none; one already acknowledged, or out of
    service, keeps its 409; another tenant's keeps its 404."""
    red = hub.raise_alarm("ch4-t2", 1.2)  # the return airway's power cut: red
    before = await hub.alarm(red)
    published = len(hub.published)
    for body in (None, {}, {"note": ""}, {"note": "  "}):
        r = await hub.post(f"/alarms/{red}/acknowledge", body, who="coal")
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"] == RED_NEEDS_NOTE
        assert "红色报警须填写确认说明" in RED_NEEDS_NOTE and "only with a note" in RED_NEEDS_NOTE
    assert await hub.alarm(red) == before and len(hub.published) == published
    assert (await hub.post(f"/alarms/{red}/acknowledge", who="chem")).status_code == 404
    r = await hub.post(f"/alarms/{red}/acknowledge", {"note": "断电已确认 power cut seen"})
    assert r.status_code == 200, r.text
    # the centre's: journaled as its own, the site's state left to the enterprise
    said = ("centre_acknowledged", "op", "断电已确认 power cut seen", "unack")
    assert journal(r.json())[-1] == said
    r = await hub.post(f"/alarms/{red}/acknowledge")  # already: the state's refusal
    assert r.status_code == 409 and "already acknowledged" in r.json()["detail"], r.text
    # the rule is the enterprise's too, whatever the centre did
    r = await hub.post(f"/alarms/{red}/acknowledge", None, who="coal")
    assert r.status_code == 422 and r.json()["detail"] == RED_NEEDS_NOTE
    # raised yellow, escalated to red, returned to normal: a red one waiting all the same
    (raised, _) = hub.feed("ch4-t1", [1.1, 1.6])
    hub.feed("ch4-t1", [0.5])
    was_red = await hub.alarm(raised.alarm_id)
    assert (was_red["isa_state"], was_red["peak_tier"]) == ("rtn_unack", "red"), was_red
    r = await hub.post(f"/alarms/{raised.alarm_id}/acknowledge")
    assert r.status_code == 422, r.text
    # a yellow one, no note needed
    yellow = hub.raise_alarm("co", 30)
    assert (await hub.post(f"/alarms/{yellow}/acknowledge")).status_code == 200
    # out of service: the 409 says why, a note would not help
    away = hub.raise_alarm("ch4-t0", 2.0)
    r = await hub.post("/sensors/ch4-t0/service", {"in_service": False, "reason": "recalibration"})
    assert r.status_code == 200, r.text
    r = await hub.post(f"/alarms/{away}/acknowledge")
    assert r.status_code == 409 and "out of service" in r.json()["detail"], r.text
