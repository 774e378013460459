"""A supervisor's monthly review of how enterprises handled their alarms, over HTTP: the alarm
list by a range of event time (`start`, `end`), `open=false` as the finished alarms, the list as
CSV, the handling report (`/api/v1/alarm-quality/handling`), and times given in seconds refused
on every route that takes an epoch-ms range (given seconds, the review read "0 activations").

The alarms come from real readings through `evaluate` and `AlarmBook`; the people's part goes
through the real `AlarmDesk` at chosen times, so that the times to acknowledge and to close are
known; the report is checked against the alarm list it must add up to.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import test_api_alarms
from test_api_alarms import CHEM, COAL, Hub, now_ms

from api.alarmcsv import COLUMNS, iso_beijing
from api.alarms import alarm_json
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

MIN = 60_000
# the coal tenant and its face named, as a city's centre knows them
NAMED = """
version: 1
tenants:
  - id: north-coal
    name: 北方煤业
    sites:
      - id: face-1301
        name: 1301 综采工作面
        kind: mine
        devices:
          - id: kj-sub-3
            name: KJ 3 号分站
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1502, unit: 1, poll_s: 1.0, timeout_s: 0.3}
            sensors:
              - {id: ch4-t0, point: ch4_t0, kind: methane, tag: T0,
                 rule: coal-methane.upper-corner-t0}
              - {id: ch4-t1, point: ch4_t1, kind: methane, tag: T1, location: 1301 工作面,
                 rule: coal-methane.face-t1}
              - {id: ch4-t2, point: ch4_t2, kind: methane, tag: T2, rule: coal-methane.return-t2}
              - {id: co, point: co, kind: co, rule: coal-gas.co}
  - id: acme-chem
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
"""


def named_registry(port: int, poll_s: float, extra_yaml: str = "") -> Registry:
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(parse_document(NAMED, HubConfig, "named.yaml"), profiles, packs, "n")


class Month:
    """The alarms of the review: four in the range, one before it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        desk = hub.desk

        def at(alarm_id: int, after_ms: int) -> int:
            return self.raised[alarm_id] + after_ms

        # E: two days ago by event time (a spool replayed now), before the range
        hub.ts = now_ms() - 2 * 86_400_000
        self.early = hub.raise_alarm("ch4-t0", 2.0)
        hub.feed("ch4-t0", [0.1])
        hub.ts = now_ms() - 10 * MIN
        self.start = hub.ts
        # A: yellow, then red; acknowledged after 60 s, returned, then verified, disposed and
        # closed by the centre's operator, closed 600 s after the hub knew of it
        (raised, _) = hub.feed("ch4-t1", [1.1, 1.6])
        self.a = raised.alarm_id
        # B: orange CO, acknowledged after 30 s by the enterprise, overdue, verified late
        self.b = hub.raise_alarm("co", 30)
        # C: red at the return airway, shelved by the centre
        self.c = hub.raise_alarm("ch4-t2", 1.2)
        # D: the chemical company's tanker over the speed limit, left alone
        self.d = hub.raise_alarm("tanker-01.speed", 90)
        self.raised = {i: hub.db.get_alarm(i).raised_at for i in self.ids}  # type: ignore[union-attr]
        desk.act(self.a, "acknowledge", actor="op", now=at(self.a, 60_000))
        hub.feed("ch4-t1", [0.5])
        for step, after in (("verify", 120_000), ("dispose", 300_000), ("close", 600_000)):
            desk.act(self.a, step, actor="op", now=at(self.a, after), note=step)
        desk.act(self.b, "acknowledge", actor="coal", now=at(self.b, 30_000))
        desk.act(
            self.c,
            "shelve",
            actor="op",
            now=at(self.c, 5_000),
            note="calibration",
            until=at(self.c, 3_600_000),
        )
        desk.tick(max(self.raised.values()) + 700_000)  # verify was due within 5 or 10 min
        desk.act(self.b, "verify", actor="coal", now=at(self.b, 900_000), note="checked")
        self.end = now_ms() + 60 * MIN

    @property
    def ids(self) -> list[int]:
        return [self.a, self.b, self.c, self.d]

    @property
    def span(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


@pytest.fixture
async def month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Month]:
    monkeypatch.setattr(test_api_alarms, "mine_registry", named_registry)
    hub = Hub(tmp_path)
    await hub.store.open()
    try:
        yield Month(hub)
    finally:
        await hub.client.aclose()
        await hub.store.close()
        hub.notifier.close()
        hub.db.close()


async def test_the_list_takes_a_range_of_event_time_and_pages_inside_it(month: Month) -> None:
    hub = month.hub
    everything = await hub.ids()
    assert month.early in everything
    inside = await hub.ids(**month.span)
    assert inside == sorted(month.ids, reverse=True)  # not the alarm of two days ago
    started = {a["id"]: a["started_ts"] for a in (await hub.get("/alarms")).json()}
    assert all(month.start <= started[i] < month.end for i in inside)
    assert await hub.ids(start=started[month.early], end=started[month.early] + 1) == [month.early]
    assert await hub.ids(end=started[month.early]) == []  # `end` is not included
    # a page of two, then the page before the smallest id seen, still inside the range
    first = await hub.ids(limit=2, **month.span)
    rest = await hub.ids(limit=2, before=first[-1], **month.span)
    assert first + rest == inside
    r = await hub.get("/alarms", params={"start": month.end, "end": month.start})
    assert r.status_code == 422 and "end must be after start" in r.text


async def test_open_false_lists_exactly_the_finished_alarms(month: Month) -> None:
    """`open=false` was no filter at all: every alarm, open ones too."""
    hub = month.hub
    finished = await hub.ids(open="false", **month.span)
    assert finished == [month.a]  # normal and closed
    open_ = await hub.ids(open="true", **month.span)
    assert sorted(finished + open_, reverse=True) == await hub.ids(**month.span)
    assert not set(finished) & set(open_)
    for a in (await hub.get("/alarms", params={"open": "false"})).json():
        assert (a["isa_state"], a["disposal"]) == ("normal", "closed")


@pytest.mark.parametrize(
    "path",
    [
        "/alarms",
        "/alarm-quality/rate",
        "/alarm-quality/chattering",
        "/alarm-quality/bad-actors",
        "/alarm-quality/handling",
        "/sensors/ch4-t1/history",
        "/vehicles/tanker-01/track",
    ],
)
async def test_a_time_in_seconds_is_refused_with_the_reason_on_every_range(
    month: Month, path: str
) -> None:
    """Seconds since the epoch read as ms are a range in January 1970 that holds nothing."""
    hub = month.hub
    s = month.start // 1000
    for params, name in (
        ({"start": s, "end": month.end}, "start"),
        ({"start": month.start, "end": month.end // 1000}, "end"),
    ):
        r = await hub.get(path, "admin", params=params)
        assert r.status_code == 422, (path, params, r.text)
        assert f"{name}={params[name]} looks like seconds" in r.json()["detail"], r.text
        assert f"{params[name] * 1000}" in r.json()["detail"]
    r = await hub.get(path, "admin", params=month.span)
    assert r.status_code == 200, (path, r.text)


def rows_of(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf"), body[:10]  # Excel reads UTF-8 only with a BOM
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


async def test_the_csv_export_has_a_row_per_alarm_with_its_handling(month: Month) -> None:
    hub = month.hub
    r = await hub.get("/alarms", params={"format": "csv", **month.span})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in r.headers["content-disposition"]
    # the file names its range, in Beijing time
    start, end = (month.span[k] for k in ("start", "end"))
    name = "alarms_{}_{}.csv".format(
        *(time.strftime("%Y%m%d-%H%M", time.gmtime(ms / 1000 + 8 * 3600)) for ms in (start, end))
    )
    assert r.headers["content-disposition"] == f'attachment; filename="{name}"', name
    rows = {int(row["id"]): row for row in rows_of(r.content)}
    assert list(rows) == await hub.ids(**month.span)  # the list's alarms, newest first
    a, b, c, d = (rows[i] for i in month.ids)
    assert (a["tenant"], a["tenant_name"], a["site"], a["site_name"]) == (
        COAL,
        "北方煤业",
        "face-1301",
        "1301 综采工作面",
    )
    assert (a["kind"], a["peak_tier"], a["tier"], a["disposal"]) == (
        "above",
        "red",
        "red",
        "closed",
    )
    raised = month.raised[month.a]
    assert a["acknowledged_at_ms"] == str(raised + 60_000)
    assert a["acknowledged_at"] == iso_beijing(raised + 60_000)
    assert a["acknowledged_at"].endswith("+08:00")
    assert a["started"] == iso_beijing(int(a["started_ms"]))
    assert [a[f"{s}_by"] for s in ("acknowledged", "verified", "disposed", "closed")] == ["op"] * 4
    assert a["closed_at_ms"] == str(raised + 600_000)
    assert (a["overdue_ever"], a["shelved"], a["ended"] != "") == ("false", "false", True)
    assert (b["acknowledged_by"], b["verified_by"], b["overdue_ever"]) == ("coal", "coal", "true")
    assert (b["overdue_now"], b["disposed_at"], b["ended"], b["ended_ms"]) == ("false", "", "", "")
    assert (c["shelved"], c["shelved_by"], c["shelved_why"], c["overdue_ever"]) == (
        "true",
        "op",
        "calibration",
        "true",
    )
    assert (d["tenant"], d["tenant_name"], d["site"], d["acknowledged_at"]) == (
        CHEM,
        "",
        "vehicles",
        "",
    )
    # the same filters as the list; an enterprise's export holds its alarms only
    r = await hub.get("/alarms", "coal", params={"format": "csv", "open": "false", **month.span})
    assert [int(row["id"]) for row in rows_of(r.content)] == [month.a]
    r = await hub.get("/alarms", "chem", params={"format": "csv", **month.span})
    assert [int(row["id"]) for row in rows_of(r.content)] == [month.d]


async def test_the_csv_export_has_each_steps_note_the_peak_and_the_duration(month: Month) -> None:
    """The monthly review lacked what was done (each step's note), how bad it got (the peak
    level, its value and when) and how long it lasted; appended after the columns of before."""
    hub = month.hub
    hub.desk.act(month.b, "dispose", actor="coal", now=now_ms(), note="=HYPERLINK(1)")
    r = await hub.get("/alarms", params={"format": "csv", **month.span})
    rows = {int(row["id"]): row for row in rows_of(r.content)}
    # the columns of before first, in their order (a review's spreadsheet reads them by place)
    before = (
        "id, tenant, tenant_name, site, site_name, device, sensor, location, kind, rule, "
        "level_name, peak_tier, tier, state, isa_state, started, started_ms, ended, ended_ms, "
        "raised_at, raised_at_ms, acknowledged_at, acknowledged_at_ms, acknowledged_by, "
        "disposal, verified_at, verified_at_ms, verified_by, disposed_at, disposed_at_ms, "
        "disposed_by, closed_at, closed_at_ms, closed_by, overdue_now, overdue_ever, shelved, "
        "shelved_by, shelved_why, "
    )
    assert ", ".join(COLUMNS).startswith(before)
    a, b = rows[month.a], rows[month.b]
    assert [a[f"{s}_note"] for s in ("acknowledged", "verified", "disposed", "closed")] == [
        "",
        "verify",
        "dispose",
        "close",
    ]
    alarm_a = await hub.alarm(month.a)
    escalated = next(e for e in alarm_a["events"] if e["kind"] == "escalated")
    assert (a["peak_level_name"], a["peak_value"], a["value_unit"]) == ("power_cut", "1.6", "%CH4")
    assert (a["peak_at_ms"], a["peak_at"]) == (str(escalated["ts"]), iso_beijing(escalated["ts"]))
    started, ended = int(a["started_ms"]), int(a["ended_ms"])
    assert float(a["duration_s"]) == (ended - started) / 1000 > 0
    # an active alarm has no duration yet; a note a spreadsheet would run is defused
    assert (b["duration_s"], b["ended"]) == ("", "")
    assert (b["disposed_note"], b["verified_note"]) == ("'=HYPERLINK(1)", "checked")
    assert (b["peak_level_name"], b["peak_at_ms"]) == ("alarm", b["started_ms"])


async def test_the_csv_export_is_refused_past_its_cap_never_cut(
    month: Month, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import alarms

    monkeypatch.setattr(alarms, "CSV_MAX_ROWS", 3)
    hub = month.hub
    r = await hub.get("/alarms", params={"format": "csv", **month.span})
    assert r.status_code == 422 and "more than 3 alarms" in r.json()["detail"], r.text
    r = await hub.get("/alarms", params={"format": "csv", "tenant": COAL, **month.span})
    assert r.status_code == 200 and len(rows_of(r.content)) == 3
    # `limit` pages the JSON list; an export is every alarm selected, so it is refused
    r = await hub.get("/alarms", params={"format": "csv", "limit": 2})
    assert r.status_code == 422 and "no limit" in r.json()["detail"]
    # and so is `before` (a page of it: 9 of 16 rows read as the month, helper-99)
    r = await hub.get("/alarms", params={"format": "csv", "before": 3, **month.span})
    assert r.status_code == 422 and "no limit or before" in r.json()["detail"]
    assert (await hub.get("/alarms", params={"format": "xlsx"})).status_code == 422


def tally(alarms: list[dict[str, Any]], open_ids: set[int]) -> dict[str, Any]:
    """What the report must say of `alarms`, counted from the list's JSON."""

    def kinds(a: dict[str, Any]) -> list[str]:
        return [e["kind"] for e in a["events"]]

    def shelved(a: dict[str, Any]) -> bool:
        first = a["events"][0]
        return "shelved" in kinds(a) or (first["kind"], first["isa_state"]) == ("raised", "shelved")

    return {
        "raised": len(alarms),
        "peak_tier": Counter(a["peak_tier"] for a in alarms),
        "acknowledged": sum("acknowledged" in kinds(a) for a in alarms),
        "disposal": Counter(a["disposal"] for a in alarms),
        "overdue_ever": sum("overdue" in kinds(a) for a in alarms),
        "open": sum(a["id"] in open_ids for a in alarms),
        "shelved": sum(shelved(a) for a in alarms),
    }


def said(counts: dict[str, Any]) -> dict[str, Any]:
    """The same from the report (zero counts left out)."""
    return {
        "raised": counts["raised"],
        "peak_tier": Counter({k: v for k, v in counts["peak_tier"].items() if v}),
        "acknowledged": counts["acknowledged"],
        "disposal": Counter({k: v for k, v in counts["disposal"].items() if v}),
        "overdue_ever": counts["overdue_ever"],
        "open": counts["open"],
        "shelved": counts["shelved"],
    }


async def test_the_handling_report_adds_up_against_the_alarm_list(month: Month) -> None:
    hub = month.hub
    r = await hub.get("/alarm-quality/handling", params=month.span)
    assert r.status_code == 200, r.text
    report = r.json()
    listed = (await hub.get("/alarms", params={"limit": 1000, **month.span})).json()
    open_ids = set(await hub.ids(open="true", limit=1000, **month.span))
    assert said(report["total"]) == tally(listed, open_ids)
    assert [t["tenant"] for t in report["tenants"]] == [CHEM, COAL]
    for t in report["tenants"]:
        its = [a for a in listed if a["tenant"] == t["tenant"]]
        assert said(t) == tally(its, open_ids), t["tenant"]
        for s in t["sites"]:
            here = [a for a in its if a["site"] == s["site"]]
            assert said(s) == tally(here, open_ids), (t["tenant"], s["site"])
        assert sum(s["raised"] for s in t["sites"]) == t["raised"]

    coal = report["tenants"][1]
    assert (coal["tenant_name"], coal["sites"][0]["site_name"]) == ("北方煤业", "1301 综采工作面")
    assert coal["peak_tier"] == {"red": 2, "orange": 1, "yellow": 0, "blue": 0, "none": 0}
    # acknowledged after 30 s (B) and 60 s (A), counted from when the hub knew of each
    assert coal["ack"] == {"n": 2, "p50_s": 30.0, "p90_s": 60.0, "max_s": 60.0}
    assert coal["closed_time"] == {"n": 1, "p50_s": 600.0, "p90_s": 600.0, "max_s": 600.0}
    assert coal["disposal"] == {
        "received": 1,
        "verified": 1,
        "disposed": 0,
        "review": 0,
        "closed": 1,
    }
    assert (coal["overdue_ever"], coal["open"], coal["shelved"]) == (2, 2, 1)
    assert coal["shelved_by"] == [{"actor": "op", "alarms": 1}]
    chem = report["tenants"][0]
    assert (chem["raised"], chem["acknowledged"], chem["ack"], chem["open"]) == (1, 0, None, 1)


async def test_the_handling_report_is_scoped_to_the_keys_tenants(month: Month) -> None:
    hub = month.hub
    path = "/alarm-quality/handling"
    mine = (await hub.get(path, "coal", params=month.span)).json()
    assert [t["tenant"] for t in mine["tenants"]] == [COAL]
    assert mine["total"]["raised"] == 3
    centre = (await hub.get(path, "op", params={"tenant": COAL, **month.span})).json()
    assert centre == mine
    r = await hub.get(path, "chem", params={"tenant": COAL, **month.span})
    assert r.status_code == 404
    empty = (await hub.get(path, params={"start": month.end, "end": month.end + MIN})).json()
    assert (empty["tenants"], empty["total"]["raised"], empty["total"]["ack"]) == ([], 0, None)


def without(tenant: str) -> Registry:
    """The registry of NAMED without `tenant`: as after `DELETE /registry/tenants/{tenant}`,
    or a restart where the file, which lacks it, wins over the API's revisions."""
    profiles, packs = load_profiles(ROOT / "profiles")
    config = parse_document(NAMED, HubConfig, "named.yaml")
    config = config.model_copy(
        update={"tenants": tuple(t for t in config.tenants if t.id != tenant)}
    )
    return build_registry(config, profiles, packs, "n")


async def test_a_removed_enterprises_alarms_stay_in_the_centres_lists_and_reports(
    month: Month,
) -> None:
    """An enterprise removed from the configuration took its alarms out of every list and
    report (they were scoped to the tenants configured), while each still answered by its id,
    unacknowledged, a red one overdue among them (helper-120). The alarms are the record: a
    centre's key keeps them in the list, the CSV, the reports and the handover; a key limited
    to tenants keeps its own tenants' (configured or not); another enterprise's, never."""
    hub = month.hub
    day = {"start": month.start - 3 * 86_400_000, "end": month.end}

    async def answers(who: str = "op", **params: Any) -> dict[str, Any]:
        listed = await hub.ids(who, limit=1000, **params)
        csv_ids = [
            int(r["id"])
            for r in rows_of(
                (await hub.get("/alarms", who, params={"format": "csv", **day, **params})).content
            )
        ]
        report = (await hub.get("/alarm-quality/handling", who, params={**day, **params})).json()
        rate = (await hub.get("/alarm-quality/rate", who, params={**day, **params})).json()
        shift = (await hub.get("/handover", who, params={**day, **params})).json()
        return {
            "list": listed,
            "csv": csv_ids,
            "report": [(t["tenant"], t["raised"]) for t in report["tenants"]],
            "rate": [(s["tenant"], s["site"], s["activations"]) for s in rate["sites"]],
            "handover": {
                k: [a["id"] for a in shift[k]["alarms"]]
                for k in ("red", "active_unack", "active_ack", "returned_unack", "overdue")
            },
            "raised": shift["raised"]["raised"],
        }

    before = {who: await answers(who) for who in ("op", "coal", "chem")}
    coal_before = await answers("op", tenant=COAL)
    early = await hub.alarm(month.early)
    assert early["isa_state"] == "rtn_unack" and early["peak_tier"] == "red" and early["overdue"]
    assert month.early in before["op"]["handover"]["overdue"]
    assert early["tenant_name"] == "北方煤业"

    hub.app.state.ctx.registry = without(COAL)
    after = {who: await answers(who) for who in ("op", "coal", "chem")}
    assert after == before
    assert await answers("op", tenant=COAL) == coal_before
    # named as the configuration is now (the list's answers are not those of before)
    listed = {a["id"]: a for a in (await hub.get("/alarms", params={"limit": 1000})).json()}
    assert (listed[month.early]["tenant"], listed[month.early]["tenant_name"]) == (COAL, "")
    # its site too, though no tenant configures it any more; a site on no record is 404
    face = await hub.ids(site="face-1301", limit=1000)
    assert month.early in face and month.d not in face
    assert (await hub.get("/alarms", params={"site": "face-9999"})).status_code == 404
    r = await hub.get("/alarm-quality/rate", params={"site": "face-1301", **day})
    assert r.status_code == 200 and r.json()["activations"] > 0, r.text
    # a tenant neither configured nor on record is none, as before; another's is 404
    assert (await hub.get("/alarms", params={"tenant": "zz-chem"})).status_code == 404
    assert (await hub.get("/handover", "chem", params={"tenant": COAL})).status_code == 404
    assert month.early not in after["chem"]["list"]
    # its own key still finishes its handling
    r = await hub.post(f"/alarms/{month.early}/acknowledge", {"note": "已停产"}, who="coal")
    assert r.status_code == 200, r.text
    assert r.json()["isa_state"] == "normal"


async def test_a_centre_sees_each_alarms_enterprise_and_site_by_name(month: Month) -> None:
    a = await month.hub.alarm(month.a)
    assert (a["tenant_name"], a["site_name"]) == ("北方煤业", "1301 综采工作面")
    d = await month.hub.alarm(month.d, "chem")
    assert (d["tenant_name"], d["site_name"]) == ("", "")


async def test_an_alarm_names_its_device_and_sensor_as_the_registry_does(month: Month) -> None:
    """A dispatcher's rows said `kj-sub-3` and `ch4-t1`: each alarm carries the registry's
    names beside the ids (the device's name, a vehicle's plate; the sensor's tag, location and
    kind), in the list, one alarm, the CSV and the handover alike; '' where the configuration
    gives none (a gateway has no name there)."""
    hub = month.hub
    a = await hub.alarm(month.a)
    named = ("device", "device_name", "sensor", "tag", "location", "sensor_kind")
    assert tuple(a[k] for k in named) == (
        "kj-sub-3",
        "KJ 3 号分站",
        "ch4-t1",
        "T1",
        "1301 工作面",
        "methane",
    )
    co = await hub.alarm(month.b)
    assert tuple(co[k] for k in named) == ("kj-sub-3", "KJ 3 号分站", "co", "", "", "co")
    d = await hub.alarm(month.d, "chem")
    assert tuple(d[k] for k in named) == (
        "tanker-01",
        "苏A·D1234",
        "tanker-01.speed",
        "hazmat",  # a vehicle's speed sensor is tagged with its class
        "苏A·D1234",
        "speed",
    )
    listed = {x["id"]: x for x in (await hub.get("/alarms", params=month.span)).json()}
    assert listed[month.a] == a and listed[month.d] == d
    r = await hub.get("/alarms", params={"format": "csv", **month.span})
    rows = {int(row["id"]): row for row in rows_of(r.content)}
    # appended, after the others (and before the centre's review's, appended later)
    at = COLUMNS.index("device_name")
    assert COLUMNS[at : at + 4] == ("device_name", "tag", "sensor_kind", "submitted_at")
    assert tuple(rows[month.a][k] for k in named) == tuple(a[k] for k in named)
    assert tuple(rows[month.d][k] for k in named) == tuple(d[k] for k in named)
    handover = (await hub.get("/handover", params={"hours": 2})).json()
    (shown,) = [x for x in handover["active_unack"]["alarms"] if x["id"] == month.d]
    assert (shown["device_name"], shown["sensor_kind"]) == ("苏A·D1234", "speed")
    # a device's and a gateway's own alarms: the device by its name, the gateway by none
    row = dataclasses.asdict(hub.db.get_alarm(month.b))  # type: ignore[arg-type]
    for sensor, device, want in (
        ("device:north-coal/face-1301/kj-sub-3", "kj-sub-3", ("KJ 3 号分站", "device")),
        ("gateway:north-coal/face-1301/kj-sub-3", "kj-sub-3", ("", "gateway")),
        ("gone", "kj-sub-9", ("", "")),  # a sensor and device no longer configured
    ):
        got = alarm_json({**row, "sensor": sensor, "device": device}, [], hub.reg)
        assert (got["device_name"], got["sensor_kind"]) == want, sensor
        assert (got["tag"], got["location"]) == ("", "")


# the shift handover (交接班) ----------------------------------------------------------------------
async def test_the_handovers_chattering_point_starts_at_its_first_activation(
    month: Month,
) -> None:
    """The handover gave as a chattering point's start its worst minute's: a dispatcher read
    that T0 began chattering at 07:50, when it had at 07:30. `first_ts` is its first activation
    in the shift; the worst minute keeps its own field, `worst_start`."""
    hub = month.hub
    hub.ts = now_ms() - 30 * MIN
    hub.feed("ch4-t0", [1.2, 0.5])  # once, 30 min ago
    hub.ts = now_ms() - 10 * MIN
    for _ in range(3):  # then three within a minute
        hub.feed("ch4-t0", [1.2, 0.5])
    h = (await hub.get("/handover")).json()
    shift = await hub.get("/alarms", params={"sensor": "ch4-t0", "start": h["start"]})
    starts = sorted(a["started_ts"] for a in shift.json())
    assert len(starts) == 4, starts  # (month.early, two days ago, is before the shift)
    ((chatter,),) = [h["chattering"]]
    assert (chatter["sensor"], chatter["activations"], chatter["worst"]) == ("ch4-t0", 4, 3)
    assert (chatter["first_ts"], chatter["worst_start"]) == (starts[0], starts[1])
    # the alarm-quality route is the same count, without a shift's start
    quality = await hub.get(
        "/alarm-quality/chattering", params={"start": h["start"], "end": h["end"]}
    )
    (point,) = quality.json()["points"]
    assert (point["worst"], point["worst_start"]) == (3, starts[1])
    # a shift that starts after the first: its first activation is the shift's own
    later = (await hub.get("/handover", params={"start": starts[0] + 1})).json()
    ((chatter,),) = [later["chattering"]]
    assert (chatter["first_ts"], chatter["activations"]) == (starts[1], 3)


async def test_the_handover_says_what_the_shift_raised_and_what_waits_now(month: Month) -> None:
    """A night dispatcher handing over at 08:00 read five pages (the list by state, the
    handling report, shelves, sensors out of service, chattering): one answer has them, scoped
    to the key's tenants and, when asked, one site."""
    hub = month.hub
    # ch4-t0 chatters (three raises within a minute); T1 (its alarm finished) is taken out of
    # service
    hub.ts = now_ms() - 5 * MIN
    for _ in range(3):
        hub.feed("ch4-t0", [1.2, 0.5])
    r = await hub.post("/sensors/ch4-t1/service", {"in_service": False, "reason": "探头更换"})
    assert r.status_code == 200, r.text
    r = await hub.get("/handover")  # the last 8 hours
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["end"] - h["start"] == 8 * 60 * MIN and h["site"] is None
    # the shift's alarms as the handling report counts them: it adds up against the list
    report = await hub.get("/alarm-quality/handling", params={"start": h["start"], "end": h["end"]})
    assert h["raised"] == report.json()["total"]
    assert h["raised"]["raised"] == len(await hub.ids(start=h["start"], end=h["end"])) == 7

    def ids(name: str) -> list[int]:
        return [a["id"] for a in h[name]["alarms"]]

    async def listed(**params: Any) -> list[int]:
        return await hub.ids(limit=1000, **params)

    # the shift's red alarms, however handled: as the list of those that started in it and
    # reached red (helper-108: a feed that failed to cut, handled by 08:00, was in no list)
    assert ids("red") == await listed(peak_tier="red", start=h["start"], end=h["end"])
    assert ids("red") and all(a["peak_tier"] == "red" for a in h["red"]["alarms"])
    # what waits now, whenever it started (E returned two days ago, still unacknowledged)
    assert ids("active_unack") == await listed(state="active", isa_state="unack") == [month.d]
    assert ids("active_ack") == await listed(state="active", isa_state="ack") == [month.b]
    assert month.early in ids("returned_unack")
    assert ids("returned_unack") == await listed(isa_state="rtn_unack")
    assert ids("overdue") == await listed(overdue="true") and month.d in ids("overdue")
    assert h["active_unack"]["truncated"] is False and h["active_unack"]["count"] == 1
    ((shelf,),) = [h["shelved"]]
    c = await hub.alarm(month.c)
    assert (shelf["sensor"], shelf["by"], shelf["reason"], shelf["tag"]) == (
        "ch4-t2",
        "op",
        "calibration",
        "T2",
    )
    assert (shelf["until"], shelf["tier"], shelf["site"]) == (c["shelved_until"], "red", c["site"])
    ((out,),) = [h["out_of_service"]]
    assert (out["sensor"], out["by"], out["reason"], out["tag"]) == (
        "ch4-t1",
        "op",
        "探头更换",
        "T1",
    )
    assert out["site"] == "face-1301" and out["since"] <= now_ms()
    ((chatter,),) = [h["chattering"]]
    assert (chatter["sensor"], chatter["activations"], chatter["worst"]) == ("ch4-t0", 3, 3)

    # 12 hours, or a range
    h12 = (await hub.get("/handover", params={"hours": 12})).json()
    assert h12["end"] - h12["start"] == 12 * 60 * MIN
    r = await hub.get("/handover", params={"start": month.start, "end": month.end})
    assert (r.json()["start"], r.json()["end"]) == (month.start, month.end)
    for bad in ({"hours": 8, "start": month.start}, {"start": month.start // 1000}, {"hours": 0}):
        assert (await hub.get("/handover", params=bad)).status_code == 422, bad

    # one site: the tanker's alarm is not the face's
    face = (await hub.get("/handover", params={"site": "face-1301"})).json()
    assert ids("active_unack") == [month.d] and face["active_unack"]["alarms"] == []
    assert face["raised"]["raised"] == 6 and face["shelved"] and face["out_of_service"]
    # the enterprise's key sees its own tenant only; another's site is 404
    coal = (await hub.get("/handover", "coal")).json()
    assert coal["active_unack"]["alarms"] == [] and coal["raised"]["raised"] == 6
    chem = (await hub.get("/handover", "chem")).json()
    assert [a["id"] for a in chem["active_unack"]["alarms"]] == [month.d]
    assert chem["shelved"] == chem["out_of_service"] == chem["chattering"] == []
    assert chem["raised"]["raised"] == 1
    assert (await hub.get("/handover", "chem", params={"site": "face-1301"})).status_code == 404


async def test_the_handover_says_which_enterprise_raised_what(month: Month) -> None:
    """A city centre's handover counted the shift's alarms for the city alone: `raised_by_tenant`
    counts them per enterprise (its id and name), as the total, adding up to it."""
    hub = month.hub
    h = (await hub.get("/handover", params=month.span)).json()
    by = {t["tenant"]: t for t in h["raised_by_tenant"]}
    assert list(by) == [CHEM, COAL]
    assert (by[COAL]["tenant_name"], by[CHEM]["tenant_name"]) == ("北方煤业", "")
    assert (by[COAL]["raised"], by[CHEM]["raised"]) == (3, 1)
    assert by[COAL]["peak_tier"] == {"red": 2, "orange": 1, "yellow": 0, "blue": 0, "none": 0}
    for field in ("raised", "acknowledged", "open", "overdue_ever", "shelved"):
        assert sum(t[field] for t in by.values()) == h["raised"][field], field
    for tier, n in h["raised"]["peak_tier"].items():
        assert sum(t["peak_tier"][tier] for t in by.values()) == n, tier
    # as the handling report counts each enterprise
    report = (await hub.get("/alarm-quality/handling", params=month.span)).json()
    assert [{k: v for k, v in t.items() if k != "sites"} for t in report["tenants"]] == list(
        by.values()
    )
    # an enterprise's key: its own
    mine = (await hub.get("/handover", "coal", params=month.span)).json()
    assert [t["tenant"] for t in mine["raised_by_tenant"]] == [COAL]
