"""The supervising centre's acknowledgement over the API, apart from the enterprise's: a centre
key (admin or operator of every tenant) sets `centre_acked` and leaves `acked` and the ISA state
to the enterprise; any other key the reverse; each side's 409, its red note, its bulk `already`;
the `centre_ack` filter and the CSV columns."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_api_alarms import Hub, opened

from api.bulkack import RED_NEEDS_NOTE


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The alarm API's hub (as `test_api_alarms` has it)."""
    async with opened(tmp_path) as h:
        yield h


def sides(a: dict[str, object]) -> tuple[object, object, object]:
    return a["isa_state"], a["acked"], a["centre_acked"]


async def test_each_side_acknowledges_its_own(hub: Hub) -> None:
    alarm_id = hub.raise_alarm()  # yellow, north-coal's
    assert sides(await hub.alarm(alarm_id)) == ("unack", False, False)
    # the centre's: journaled as its own, the site's ISA state left to the enterprise
    r = await hub.post(f"/alarms/{alarm_id}/acknowledge", {"note": "seen at the centre"})
    assert r.status_code == 200, r.text
    assert sides(r.json()) == ("unack", False, True)
    last = r.json()["events"][-1]
    assert (last["kind"], last["actor"], last["comment"]) == (
        "centre_acknowledged",
        "op",
        "seen at the centre",
    )
    r = await hub.post(f"/alarms/{alarm_id}/acknowledge")
    assert r.status_code == 409 and "already acknowledged by the centre" in r.json()["detail"]
    # a key limited to tenants (an operator's too) is the enterprise's side
    r = await hub.post(f"/alarms/{alarm_id}/acknowledge", None, "coal")
    assert r.status_code == 200 and sides(r.json()) == ("ack", True, True)
    assert r.json()["events"][-1]["kind"] == "acknowledged"
    r = await hub.post(f"/alarms/{alarm_id}/acknowledge", None, "coal")
    assert r.status_code == 409 and r.json()["detail"] == "the alarm is already acknowledged"
    # an escalation asks both again
    hub.feed("ch4-t1", [1.6])
    assert sides(await hub.alarm(alarm_id)) == ("unack", False, False)


async def test_the_filter_lists_what_waits_for_the_centre(hub: Hub) -> None:
    seen_by_firm = hub.raise_alarm("ch4-t1", 1.1)
    seen_by_centre = hub.raise_alarm("co", 30)
    neither = hub.raise_alarm("tanker-01.speed", 90)
    await hub.post(f"/alarms/{seen_by_firm}/acknowledge", None, "coal")
    await hub.post(f"/alarms/{seen_by_centre}/acknowledge")
    assert await hub.ids(centre_ack="false", open="true") == [neither, seen_by_firm]
    assert await hub.ids(centre_ack="true") == [seen_by_centre]
    assert await hub.ids("coal", centre_ack="false") == [seen_by_firm]  # its own tenant's only
    r = await hub.get("/alarms", params={"centre_ack": "maybe"})
    assert r.status_code == 422
    r = await hub.get("/alarms", params={"format": "csv", "centre_ack": "true"})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(int(x["id"]), x["centre_acked"], x["centre_acknowledged_by"]) for x in rows] == [
        (seen_by_centre, "true", "op")
    ]
    assert rows[0]["acknowledged_by"] == "" and rows[0]["centre_acknowledged_at_ms"]


async def test_red_needs_a_note_on_both_sides_alone_and_in_bulk(hub: Hub) -> None:
    red = hub.raise_alarm("ch4-t2", 1.2)
    for who in ("op", "coal"):
        r = await hub.post(f"/alarms/{red}/acknowledge", None, who)
        assert r.status_code == 422 and r.json()["detail"] == RED_NEEDS_NOTE, who
    r = await hub.post("/alarms/acknowledge", {"ids": [red], "note": "phoned the site"}, "coal")
    assert r.json()["counts"]["acknowledged"] == 1
    # each result says both sides after (it said the enterprise's ISA state alone)
    (res,) = r.json()["results"]
    assert (res["isa_state"], res["centre_acked"]) == ("ack", False)
    # the enterprise acknowledged: the centre still needs a note, and still may acknowledge
    r = await hub.post("/alarms/acknowledge", {"ids": [red]}, "op")
    assert r.json()["counts"]["refused"] == 1
    r = await hub.post("/alarms/acknowledge", {"ids": [red], "note": "断电已核实"}, "op")
    assert r.json()["counts"]["acknowledged"] == 1
    assert r.json()["results"][0]["centre_acked"] is True
    r = await hub.post("/alarms/acknowledge", {"ids": [red], "note": "again"}, "op")
    assert r.json()["counts"]["already"] == 1
    assert r.json()["results"][0]["centre_acked"] is True
    assert sides(await hub.alarm(red)) == ("ack", True, True)


async def test_the_centre_is_the_site_of_a_tenant_without_a_console_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no key of the tenant's may write (a centre alone: the demo, a city running the hub
    for enterprises without accounts), the centre's acknowledgement is the site's too; else
    nothing of the tenant ever returned to normal and its repeats went on for ever."""
    import test_api_alarms

    only = [k for k in test_api_alarms.KEYS if k.name in ("admin", "op", "viewer")]
    monkeypatch.setattr(test_api_alarms, "KEYS", only)
    async with opened(tmp_path) as h:
        alarm_id = h.raise_alarm()  # north-coal's: only a viewer key of its own
        r = await h.post(f"/alarms/{alarm_id}/acknowledge", {"note": "seen at the centre"})
        assert r.status_code == 200, r.text
        assert sides(r.json()) == ("ack", True, True)
        kinds = [e["kind"] for e in r.json()["events"]]
        assert kinds[-2:] == ["acknowledged", "centre_acknowledged"]
        r = await h.post(f"/alarms/{alarm_id}/acknowledge")
        assert r.status_code == 409


async def test_the_handover_and_the_report_count_the_centres_acknowledgement(hub: Hub) -> None:
    """The handover and the handling report counted the enterprise's acknowledgement only: the
    centre's own, and what waits for it, were in the CSV alone (helper-133)."""
    seen_by_firm = hub.raise_alarm("ch4-t1", 1.1)
    seen_by_centre = hub.raise_alarm("co", 30)
    neither = hub.raise_alarm("tanker-01.speed", 90)
    await hub.post(f"/alarms/{seen_by_firm}/acknowledge", None, "coal")
    await hub.post(f"/alarms/{seen_by_centre}/acknowledge")
    r = await hub.get("/handover", params={"hours": 1})
    assert r.status_code == 200, r.text
    got = r.json()
    waiting = {a["id"] for a in got["centre_unack"]["alarms"]}
    assert waiting == {seen_by_firm, neither}
    assert {a["id"] for a in got["active_unack"]["alarms"]} == {seen_by_centre, neither}
    raised = got["raised"]
    assert (raised["acknowledged"], raised["centre_acknowledged"]) == (1, 1)
    assert raised["centre_ack"]["n"] == 1
    # an enterprise's key: its own tenant's alone
    mine = (await hub.get("/handover", params={"hours": 1}, who="coal")).json()
    assert {a["id"] for a in mine["centre_unack"]["alarms"]} == {seen_by_firm}
    report = (await hub.get("/alarm-quality/handling")).json()
    assert report["total"]["centre_acknowledged"] == 1


async def test_an_invisible_or_control_character_is_no_note(hub: Hub) -> None:
    """helper-133 acknowledged red alarms, alone and in bulk, with a note of one U+200B (zero
    width space), U+FEFF or NUL, and commented and disposed so: the EEMUA 191 rule passed, the
    journal and the CSV showed nothing (and a NUL). Format characters are taken out and the
    rest stripped before the check; a control character is refused."""
    red = hub.raise_alarm("ch4-t2", 1.2)
    for note in ("\u200b", "\ufeff", " \u3000\u200b "):
        for who in ("op", "coal"):
            r = await hub.post(f"/alarms/{red}/acknowledge", {"note": note}, who)
            assert r.status_code == 422 and r.json()["detail"] == RED_NEEDS_NOTE, (note, who)
        r = await hub.post("/alarms/acknowledge", {"ids": [red], "note": note}, "coal")
        assert r.json()["counts"]["refused"] == 1
        for path, body in (
            (f"/alarms/{red}/comment", {"note": note}),
            (f"/alarms/{red}/disposal", {"step": "verify", "note": note}),
            ("/alarms/disposal", {"ids": [red], "step": "verify", "note": note}),
            (f"/alarms/{red}/review", {"decision": "return", "note": note}),
        ):
            r = await hub.post(path, body)
            assert r.status_code == 422 and "invisible" in r.text, (path, note, r.text)
    r = await hub.post(f"/alarms/{red}/acknowledge", {"note": "已\u200b电话\u202e核实\x00"}, "coal")
    assert r.status_code == 422 and "U+0000" in r.text
    r = await hub.post(f"/alarms/{red}/acknowledge", {"note": "  已\u200b电话\u202e核实\t"}, "coal")
    assert r.status_code == 200, r.text
    assert r.json()["events"][-1]["comment"] == "已电话核实"
    # and a shelve's end in seconds is told so, as a time range's is
    r = await hub.post(f"/alarms/{red}/shelve", {"reason": "r", "until": 1_796_185_000})
    assert r.status_code == 422 and "looks like seconds" in r.json()["detail"]
