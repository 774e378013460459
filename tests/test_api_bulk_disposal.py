"""Many alarms through a disposal step at once over HTTP (`POST /api/v1/alarms/disposal`,
`api.bulkdisposal`): a night dispatcher had 104 chattering methane alarms to verify, dispose and
close one form each. Each alarm is journaled as if stepped alone; per id the answer says what
happened; another tenant's id is not found and left alone; red ones go too (the note is required
anyway); at most 500 per call.

Alarms come from real readings through `evaluate` and `AlarmBook` (`test_api_alarms.Hub`)."""

from __future__ import annotations

from test_api_alarms import MISSING, Hub, hub, journal
from test_api_bulk_ack import chatter

from api.bulkack import BULK_MAX

__all__ = ["hub"]  # the fixture


async def test_a_chattering_points_alarms_go_through_each_step_at_once_each_journaled(
    hub: Hub,
) -> None:
    yellow = chatter(hub, 4)  # returned to normal
    red = hub.raise_alarm("ch4-t2", 1.2)  # the return airway's power cut: red, still active
    chem = hub.raise_alarm("tanker-01.speed", 90)  # another enterprise's
    ahead = hub.raise_alarm("co", 30)
    r = await hub.post(f"/alarms/{ahead}/disposal", {"step": "verify", "note": "seen"}, "coal")
    assert r.status_code == 200, r.text
    chem_before = await hub.alarm(chem)
    published = len(hub.published)

    note = "T1 探头抖动，已通知检修 chattering head, repair called"
    ids = [*yellow, red, chem, MISSING, ahead, yellow[0]]  # the first twice
    r = await hub.post("/alarms/disposal", {"ids": ids, "step": "verify", "note": note}, "coal")
    assert r.status_code == 200, r.text
    body = r.json()
    got = {x["id"]: (x["result"], x["reason"], x["disposal"]) for x in body["results"]}
    assert [x["id"] for x in body["results"]] == ids[:-1]  # in order, each once
    assert all(got[i] == ("done", None, "verified") for i in [*yellow, red])  # red too
    assert got[chem] == got[MISSING] == ("not_found", None, None)  # never told it exists
    assert got[ahead] == ("already", None, "verified")
    assert body["counts"] == {"done": 5, "already": 1, "not_found": 2, "refused": 0}
    # each alarm journaled on its own, by the key, with the note; published once each
    for i in yellow:
        a = await hub.alarm(i)
        assert a["disposal"] == "verified" and not a["overdue"]
        assert journal(a)[-1] == ("verified", "coal", note, "rtn_unack")
    assert [(e.alarm_id, e.kind, e.actor) for e in hub.published[published:]] == [
        (i, "verified", "coal") for i in [*yellow, red]
    ]
    assert await hub.alarm(chem) == chem_before

    # out of order: closing before disposing is refused with the desk's reason
    r = await hub.post("/alarms/disposal", {"ids": [yellow[0]], "step": "close", "note": "n"})
    (one,) = r.json()["results"]
    assert (one["result"], one["reason"]) == (
        "refused",
        "cannot close: disposal is verified, not disposed",
    )
    r = await hub.post("/alarms/disposal", {"ids": [*yellow, red], "step": "dispose", "note": note})
    assert r.json()["counts"] == {"done": 5, "already": 0, "not_found": 0, "refused": 0}
    # closing: the returned ones close, the red one still active is refused, the others go on
    r = await hub.post("/alarms/disposal", {"ids": [red, *yellow], "step": "close", "note": note})
    body = r.json()
    assert body["results"][0] == {
        "id": red,
        "result": "refused",
        "reason": "cannot close: the alarm is still active",
        "disposal": "disposed",
        "isa_state": "unack",
    }
    assert body["counts"] == {"done": 4, "already": 0, "not_found": 0, "refused": 1}
    assert [(await hub.alarm(i))["disposal"] for i in yellow] == ["closed"] * 4
    r = await hub.post("/alarms/disposal", {"ids": yellow, "step": "verify", "note": "again"})
    assert r.json()["counts"]["already"] == 4  # past that step
    # a centre's key steps any tenant's
    r = await hub.post("/alarms/disposal", {"ids": [chem], "step": "verify", "note": "n"})
    assert r.json()["results"][0]["result"] == "done"


async def test_a_missing_note_more_than_the_cap_or_a_viewer_is_refused(hub: Hub) -> None:
    (one,) = chatter(hub, 1)
    step = {"step": "verify", "note": "n"}
    r = await hub.post("/alarms/disposal", {"ids": list(range(1, BULK_MAX + 2)), **step})
    assert r.status_code == 422, r.text
    assert f"at most {BULK_MAX} items" in r.json()["detail"], r.text
    for body in (
        {"ids": [one], "step": "verify"},
        {"ids": [one], "step": "verify", "note": ""},
        {"ids": [one], "step": "verify", "note": "   "},  # refused whole, not per alarm
        {"ids": [one], "step": "reopen", "note": "n"},
        {"ids": [one], "note": "n"},
        {"ids": [], **step},
        {"ids": [0], **step},
        {"ids": [one], "until": 1, **step},
    ):
        r = await hub.post("/alarms/disposal", body)
        assert r.status_code == 422, (body, r.text)
    r = await hub.post("/alarms/disposal", {"ids": [one], **step}, who="viewer")
    assert (r.status_code, r.json()["detail"]) == (403, "this key may only read")
    assert (await hub.alarm(one))["disposal"] == "received"  # nothing done by the refused calls
    r = await hub.post("/alarms/disposal", {"ids": list(range(1, BULK_MAX + 1)), **step})
    assert r.status_code == 200 and r.json()["counts"]["done"] == 1
