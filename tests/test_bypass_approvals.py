"""Interlock bypass approvals (联锁旁路/摘除审批, DOMAIN 2.4): the written approval of a loop's
bypass recorded, listed, read and revoked through the API (tenant-scoped, strict, never changed
nor deleted), and the `bypass_unapproved` alarm the hub's clock raises on a bypass in effect
without an approval covering now once `approve_within_s` have passed (`alerts.bypassalarms`,
judged here on the dispatcher's tick with an injected clock; tests/test_bypass_approvals_hub.py
plays it on a whole hub over a real broker)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_api_alarms import KEYS, auth

from alerts.alarms import AlarmEvent
from alerts.bypassalarms import BypassAlarms, CentresApprovalError
from alerts.bypasses import (
    BACKDATE_MS,
    CENTRE,
    ENTERPRISE,
    MAX_OPEN,
    MAX_SPAN_MS,
    insert_approval,
    list_approvals,
    revoke_approval,
)
from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

T0 = 1_800_000_000_000
S = 1000
CHEM = "acme-chem"

CONFIG = """
version: 1
interlock_bypass: {{approve_within_s: {within}}}
device_profiles:
  - name: gas-one
    points: [{{name: gas, address: 0, dtype: uint16}}]
tenants:
  - id: acme-chem
    sites:
      - id: plant
        devices:
          - id: sis-1
            profile: interlock-block
            sensors:
              - {{id: sis-bypass, point: bypassed, kind: interlock,
                 rule: chem-process.interlock-bypass}}
              - {{id: sis-trip, point: tripped, kind: interlock, rule: chem-process.interlock-trip}}
          - id: det-1
            profile: gas-one
            sensors:
              - {{id: lel-1, point: gas, kind: flammable_gas,
                 levels: [{{name: level1, tier: yellow, above: 25, recover: 23}}]}}
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: sis-2
            profile: interlock-block
            sensors:
              - {{id: coal-bypass, point: bypassed, kind: interlock,
                 rule: chem-process.interlock-bypass}}
"""


def registry(within: float = 60) -> Registry:
    config = parse_document(CONFIG.format(within=within), HubConfig, "bypass.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "bypass.yaml")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def kinds(events: Sequence[AlarmEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.sensor, e.level_name, e.tier) for e in events]


def ours(events: Sequence[AlarmEvent]) -> list[AlarmEvent]:
    return [e for e in events if e.side == "bypass_unapproved"]


# over HTTP ---------------------------------------------------------------------------------------
class Api:
    def __init__(self, tmp_path: Path) -> None:
        self.reg = registry()
        self.db = StateDB(tmp_path / "state.db")
        self.store = SqliteStore(self.reg, tmp_path / "ts.db")
        self.published: list[AlarmEvent] = []

        async def on_events(events: Sequence[AlarmEvent]) -> None:
            self.published.extend(events)

        ctx = AppContext(
            self.reg, self.store, self.db, Metrics(), KeyRing(KEYS), on_events=on_events
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
        )

    async def post(self, body: Any, who: str = "chem", path: str = "") -> httpx.Response:
        url = f"/api/v1/bypass-approvals{path}"
        return await self.client.post(url, json=body, headers=auth(who))

    async def get(self, who: str = "chem", path: str = "", **params: Any) -> httpx.Response:
        url = f"/api/v1/bypass-approvals{path}"
        return await self.client.get(url, params=params, headers=auth(who))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = Api(tmp_path)
    await a.store.open()
    try:
        yield a
    finally:
        await a.client.aclose()
        await a.store.close()
        a.db.close()


def good(**changed: Any) -> dict[str, Any]:
    now = now_ms()
    body = {
        "sensor": "sis-bypass",
        "approved_by": "张工 (设备部经理)",
        "reason": "进料切断阀检修 inlet shut-off valve overhaul",
        "measures": "专人现场监护, 手动切断阀就位 a watch on site, the manual valve manned",
        "ticket": "SIS-2026-017",
        "valid_from": now - 60 * S,
        "until": now + 8 * 3600 * S,
    }
    return {**body, **changed}


async def test_a_writer_records_an_approval_that_lists_reads_and_revokes_once(api: Api) -> None:
    r = await api.post(good())
    assert r.status_code == 201, r.text
    body = r.json()
    approval = body["approval"]
    assert body["alarm_events"] == 0  # nothing bypassed: nothing to clear
    assert (approval["tenant"], approval["sensor"], approval["actor"]) == (
        CHEM,
        "sis-bypass",
        "chem",
    )
    assert approval["active"] is True and approval["revoked_at"] is None
    assert approval["ticket"] == "SIS-2026-017"
    assert approval["party"] == "enterprise"
    schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    said = schema["BypassApprovalRecorded"]["properties"]["alarm_events"]["description"]
    assert said.startswith("a count, not a list")
    aid = approval["id"]
    # read by id, listed (active, by sensor); the centre sees it, another enterprise does not
    assert (await api.get(path=f"/{aid}")).json() == approval
    assert [a["id"] for a in (await api.get(active="true")).json()] == [aid]
    assert (await api.get(active="false")).json() == []
    assert [a["id"] for a in (await api.get("op", sensor="sis-bypass")).json()] == [aid]
    assert (await api.get("coal")).json() == []
    assert (await api.get("coal", path=f"/{aid}")).status_code == 404
    assert (await api.get("coal", sensor="sis-bypass")).status_code == 404
    assert (await api.get("coal", tenant=CHEM)).status_code == 404
    assert (await api.get(sensor="no-such")).status_code == 404
    # another enterprise cannot revoke it; a viewer writes nothing
    note = {"note": "检修提前完成 the overhaul finished early"}
    assert (await api.post(note, "coal", f"/{aid}/revoke")).status_code == 404
    assert (await api.post(note, "viewer", f"/{aid}/revoke")).status_code == 403
    # revoked by the centre's operator: kept, with who, when and why; inactive now
    r = await api.post(note, "op", f"/{aid}/revoke")
    assert r.status_code == 200, r.text
    revoked = r.json()["approval"]
    assert (revoked["revoked_by"], revoked["revoke_note"], revoked["active"]) == (
        "op",
        note["note"],
        False,
    )
    assert revoked["revoked_at"] is not None
    again = await api.post({"note": "again"}, "chem", f"/{aid}/revoke")
    assert again.status_code == 409 and "revoked already" in again.text
    assert (await api.get(path=f"/{aid}")).json()["revoke_note"] == note["note"]
    assert [a["id"] for a in (await api.get(active="false")).json()] == [aid]
    # no route changes or deletes one
    for method in ("PUT", "PATCH", "DELETE"):
        r = await api.client.request(method, f"/api/v1/bypass-approvals/{aid}", headers=auth("op"))
        assert r.status_code == 405, (method, r.status_code)


async def test_bad_input_another_tenants_sensor_and_readers_are_refused(api: Api) -> None:
    now = now_ms()
    assert (await api.post(good(), "coal")).status_code == 404  # another enterprise's sensor
    assert (await api.post(good(sensor="no-such"))).status_code == 404
    assert (await api.post(good(), "viewer")).status_code == 403
    bad: list[tuple[dict[str, Any], str]] = [
        (good(sensor="lel-1"), "no interlock bypass flag"),
        (good(extra="x"), "extra"),
        (good(valid_from=str(now)), "valid_from"),
        (good(valid_from=float(now)), "valid_from"),
        (good(valid_from=now // 1000 - 60, until=now // 1000 + 3600), "looks like seconds"),
        (good(until=0), "greater than or equal to 1"),
        (good(until=2**63), "less than or equal to"),
        (good(until=now - 10 * S, valid_from=now - 20 * S), "not later than the hub's clock"),
        (good(until=now - 120 * S), "until must be after valid_from"),
        (good(until=now + MAX_SPAN_MS), "at most 30 days"),
        (good(valid_from=now + MAX_SPAN_MS + 60 * S, until=now + MAX_SPAN_MS + 120 * S), "30 days"),
        (good(valid_from=now - 29 * 24 * 3600 * S), "more than 24 h before"),
        (good(valid_from=now - BACKDATE_MS - 60 * S), "more than 24 h before"),
        (good(measures=" \u200b "), "measures"),
        ({k: v for k, v in good().items() if k != "approved_by"}, "approved_by"),
        ({k: v for k, v in good().items() if k != "measures"}, "measures"),
    ]
    for body, says in bad:
        r = await api.post(body)
        assert r.status_code == 422, (body, r.text)
        assert says in r.text, (body, r.text)
    assert list_approvals(api.db, None, None, None, None, 10) == []  # nothing recorded
    assert (await api.post({}, "chem", "/1/revoke")).status_code == 422  # the note is required
    assert (await api.post({"note": "x"}, "chem", "/1/revoke")).status_code == 404
    assert (await api.post({"note": "x"}, "chem", "/0/revoke")).status_code == 422
    assert (await api.get(path="/0")).status_code == 422
    assert (await api.get(limit=0)).status_code == 422
    # the trip flag is of kind interlock too, but has no bypass level: an approval of it would
    # mean nothing (bypass_unapproved follows the bypassed levels alone)
    r = await api.post(good(sensor="sis-trip"), "op")
    assert r.status_code == 422 and "no interlock bypass flag" in r.text, r.text
    # a late paper of an emergency bypass: up to 24 h back
    r = await api.post(good(valid_from=now - BACKDATE_MS + 60 * S))
    assert r.status_code == 201, r.text


async def test_the_centres_approval_is_revoked_by_the_centre_alone_and_says_its_party(
    api: Api,
) -> None:
    r = await api.post(good(ticket="中心-001"), "op")  # the centre's own record
    assert r.status_code == 201, r.text
    centre = r.json()["approval"]
    assert (centre["party"], centre["actor"]) == ("centre", "op")
    r = await api.post(good(), "chem")
    enterprise = r.json()["approval"]
    assert enterprise["party"] == "enterprise"
    # a centre role limited to some tenants records for the enterprise (as its acks do)
    r = await api.post(good(), "chem-op")
    assert r.json()["approval"]["party"] == "enterprise"
    # the enterprise's key cannot revoke the centre's approval: 403 with the reason, kept
    note = {"note": "企业撤销 the enterprise revokes"}
    r = await api.post(note, "chem", f"/{centre['id']}/revoke")
    assert r.status_code == 403, r.text
    assert "recorded by the supervising centre (op)" in r.text
    assert (await api.get(path=f"/{centre['id']}")).json()["revoked_at"] is None
    r = await api.post(note, "chem-op", f"/{centre['id']}/revoke")
    assert r.status_code == 403, r.text
    # the enterprise revokes its own; the centre any
    assert (await api.post(note, "chem", f"/{enterprise['id']}/revoke")).status_code == 200
    r = await api.post(note, "admin", f"/{centre['id']}/revoke")
    assert r.status_code == 200 and r.json()["approval"]["revoked_by"] == "admin", r.text
    # listed by party
    assert [a["id"] for a in (await api.get(party="centre")).json()] == [centre["id"]]
    found = [a["party"] for a in (await api.get(party="enterprise")).json()]
    assert found == ["enterprise", "enterprise"]
    assert (await api.get(party="other")).status_code == 422


def test_an_approval_of_before_the_party_is_revoked_by_the_centre_or_its_own_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    db = StateDB(path)
    db.close()
    # a file of the first version: the table without `party`, two rows in it
    con = sqlite3.connect(path)
    con.executescript(
        "DROP TRIGGER bypass_approvals_kept_v2; DROP TABLE bypass_approvals;"
        "CREATE TABLE bypass_approvals (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " tenant TEXT NOT NULL, sensor TEXT NOT NULL, approved_by TEXT NOT NULL,"
        " reason TEXT NOT NULL, measures TEXT NOT NULL, ticket TEXT,"
        " valid_from INTEGER NOT NULL, until INTEGER NOT NULL, actor TEXT NOT NULL,"
        " recorded_at INTEGER NOT NULL, revoked_at INTEGER, revoked_by TEXT, revoke_note TEXT);"
        "CREATE TRIGGER bypass_approvals_kept BEFORE UPDATE ON bypass_approvals"
        " WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL"
        " BEGIN SELECT RAISE(ABORT, 'a bypass approval is only ever revoked, once'); END;"
    )
    for actor in ("op", "chem"):
        con.execute(
            "INSERT INTO bypass_approvals (tenant, sensor, approved_by, reason, measures,"
            " valid_from, until, actor, recorded_at) VALUES (?, ?, 'x', 'x', 'x', ?, ?, ?, ?)",
            (CHEM, "sis-bypass", T0, T0 + 3600 * S, actor, T0),
        )
    con.commit()
    con.close()
    db = StateDB(path)
    try:
        alarms = BypassAlarms(db, registry())
        with pytest.raises(sqlite3.IntegrityError, match="only ever revoked"):
            db._db.execute("UPDATE bypass_approvals SET revoked_at = 1, party = 'enterprise'")
        with pytest.raises(CentresApprovalError):  # another key's, of a party unknown
            alarms.revoke(1, [CHEM], "x", "chem", T0 + S, ENTERPRISE)
        assert alarms.revoke(2, [CHEM], "x", "chem", T0 + S, ENTERPRISE)[2]  # its own
        assert alarms.revoke(1, None, "x", "admin", T0 + S, CENTRE)[2]
        assert [a.party for a in list_approvals(db, None, None, None, None, 10)] == [None, None]
    finally:
        db.close()


def test_the_record_is_never_deleted_and_only_its_revocation_written_once(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    alarms = BypassAlarms(db, registry())
    fields = ("张工", "检修", "监护", None, T0, T0 + 3600 * S)
    approval, _ = alarms.record("sis-bypass", None, fields, "chem", T0, ENTERPRISE)
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        db._db.execute("DELETE FROM bypass_approvals")
    with pytest.raises(sqlite3.IntegrityError, match="only ever revoked"):
        db._db.execute("UPDATE bypass_approvals SET until = until + 1")
    with pytest.raises(sqlite3.IntegrityError, match="only ever revoked"):
        db._db.execute("UPDATE bypass_approvals SET revoked_at = 1, reason = 'other'")
    with pytest.raises(sqlite3.IntegrityError, match="only ever revoked"):
        db._db.execute("UPDATE bypass_approvals SET revoked_at = 1, party = 'centre'")
    after, _, revoked = alarms.revoke(approval.id, None, "完成", "op", T0 + 60 * S, CENTRE)
    assert revoked and after.revoked_at == T0 + 60 * S
    with pytest.raises(sqlite3.IntegrityError, match="only ever revoked"):
        db._db.execute("UPDATE bypass_approvals SET revoke_note = 'rewritten'")
    assert alarms.revoke(approval.id, None, "again", "op", T0 + 90 * S, CENTRE)[2] is False
    db.close()


# the alarm on the dispatcher's clock -------------------------------------------------------------
def batch(i: int, ts: int, value: float, seq: int) -> ReadingBatch:
    return ReadingBatch(
        np.array([i], np.int32),
        np.array([ts], np.int64),
        np.array([value]),
        np.zeros(1, np.uint8),
        np.zeros(1, np.int64),
        np.array([seq], np.int64),
    )


async def test_a_bypass_unapproved_past_its_grace_raises_and_an_approval_clears_it(
    tmp_path: Path,
) -> None:
    reg = registry(within=60)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    flag = reg.sensor("sis-bypass")
    assert flag is not None
    try:
        d = Dispatcher(reg, store, db, Metrics())
        await d.judge(batch(flag.index, T0, 0.0, 1), [], T0)
        await d.judge(batch(flag.index, T0 + S, 1.0, 2), [], T0 + S)  # bypassed (blue)
        assert ours(await d.tick(T0 + 30 * S)) == []
        assert ours(await d.tick(T0 + 60 * S)) == []  # the grace runs 60 s from the bypass
        (raised,) = ours(await d.tick(T0 + 62 * S))
        assert kinds([raised]) == [("raised", "sis-bypass", "bypass_unapproved", "orange")]
        assert raised.ts == T0 + 61 * S  # when it fell due, in event time
        assert "no approval given within 60 s" in raised.comment
        assert ours(await d.tick(T0 + 63 * S)) == []  # one active, raised once

        # an approval covering now clears it at once; the tick then says nothing
        alarms = BypassAlarms(db, reg)
        fields = ("张工", "检修", "监护", "SIS-1", T0, T0 + 120 * S)
        approval, events = alarms.record(
            "sis-bypass", [CHEM], fields, "chem", T0 + 70 * S, ENTERPRISE
        )
        assert kinds(events) == [("cleared", "sis-bypass", "normal", "none")]
        assert events[0].ts == T0 + 70 * S and "SIS-1 by 张工" in events[0].comment
        assert "(recorded by 企业 the enterprise's key chem)" in events[0].comment
        assert ours(await d.tick(T0 + 71 * S)) == []
        # it expires while the loop is still bypassed: raised again, stamped at its until
        assert ours(await d.tick(T0 + 119 * S)) == []
        (again,) = ours(await d.tick(T0 + 125 * S))
        assert (again.kind, again.ts) == ("raised", T0 + 120 * S)
        assert f"approval #{approval.id} expired" in again.comment
        assert again.alarm_id != raised.alarm_id

        # a second approval, revoked: raised at the revocation
        fields = ("李工", "再检修", "监护", None, T0 + 125 * S, T0 + 3600 * S)
        second, events = alarms.record("sis-bypass", None, fields, "op", T0 + 126 * S, CENTRE)
        assert kinds(events) == [("cleared", "sis-bypass", "normal", "none")]
        _, events, _ = alarms.revoke(second.id, None, "工作票作废", "op", T0 + 130 * S, CENTRE)
        assert kinds(events) == [("raised", "sis-bypass", "bypass_unapproved", "orange")]
        assert events[0].ts == T0 + 130 * S and "revoked" in events[0].comment

        # restarted (a new dispatcher on the same database): nothing raised twice
        d = Dispatcher(reg, store, db, Metrics())
        assert ours(await d.tick(T0 + 140 * S)) == []

        # the bypass ends: cleared at its end, in event time
        await d.judge(batch(flag.index, T0 + 150 * S, 0.0, 3), [], T0 + 150 * S)
        (cleared,) = ours(await d.tick(T0 + 152 * S))
        assert (cleared.kind, cleared.ts) == ("cleared", T0 + 150 * S)
        assert ours(await d.tick(T0 + 300 * S)) == []
        rows = db.query("SELECT COUNT(*) FROM alarms WHERE side = 128")
        assert rows == [(3,)]
    finally:
        await store.close()
        db.close()


async def test_a_bypass_approved_ahead_raises_nothing_and_a_tick_without_bypass_writes_nothing(
    tmp_path: Path,
) -> None:
    reg = registry(within=0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    flag = reg.sensor("sis-bypass")
    assert flag is not None
    try:
        d = Dispatcher(reg, store, db, Metrics())
        alarms = BypassAlarms(db, reg)
        fields = ("张工", "检修", "监护", None, T0, T0 + 3600 * S)
        alarms.record(
            "sis-bypass", None, fields, "chem", T0 - 600 * S, ENTERPRISE
        )  # recorded ahead
        await d.judge(batch(flag.index, T0 + S, 1.0, 1), [], T0 + S)
        assert ours(await d.tick(T0 + 2 * S)) == []
        # another tenant's loop bypassed, unapproved: raised at once (no grace)
        other = reg.sensor("coal-bypass")
        assert other is not None
        await d.judge(batch(other.index, T0 + 3 * S, 1.0, 2), [], T0 + 3 * S)
        assert [e.sensor for e in ours(await d.tick(T0 + 4 * S))] == ["coal-bypass"]
        # the tick reads, never writes, while nothing changes
        wrote: list[str] = []
        read: list[str] = []
        db._db.set_trace_callback(wrote.append)
        db._reader.set_trace_callback(read.append)
        assert ours(await d.tick(T0 + 5 * S)) == []
        assert [s for s in read if "level_name >=" in s]  # the probe, on the reading connection
        assert not [s for s in wrote if "level_name >=" in s or "bypass_approvals" in s]
    finally:
        await store.close()
        db.close()


async def test_a_sensor_has_at_most_20_approvals_not_ended_at_once(api: Api) -> None:
    now = now_ms()
    ids = []
    for i in range(MAX_OPEN):  # the papers of bypasses planned ahead, and one covering now
        start = now - 60 * S if i == 0 else now + i * 3600 * S
        r = await api.post(good(valid_from=start, until=start + 1800 * S), "chem" if i else "op")
        assert r.status_code == 201, r.text
        ids.append(r.json()["approval"]["id"])
    r = await api.post(good(valid_from=now + 100 * 3600 * S, until=now + 101 * 3600 * S), "op")
    assert r.status_code == 409 and "has 20 approvals not ended already" in r.text, r.text
    assert len((await api.get(limit=1000)).json()) == MAX_OPEN
    # one revoked: room for another
    assert (await api.post({"note": "计划取消"}, "chem", f"/{ids[-1]}/revoke")).status_code == 200
    assert (await api.post(good(), "chem")).status_code == 201
    assert (await api.post(good(), "chem")).status_code == 409
    # another loop's are its own
    r = await api.post(good(sensor="coal-bypass"), "op")
    assert r.status_code == 201, r.text


async def test_the_tick_reads_the_approvals_covering_the_bypass_not_every_one_ahead(
    tmp_path: Path,
) -> None:
    reg = registry(within=0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    flag = reg.sensor("sis-bypass")
    assert flag is not None
    try:
        d = Dispatcher(reg, store, db, Metrics())
        alarms = BypassAlarms(db, reg)
        fields = ("张工", "检修", "监护", None, T0, T0 + 3600 * S)
        alarms.record("sis-bypass", None, fields, "chem", T0, ENTERPRISE)
        await d.judge(batch(flag.index, T0 + S, 1.0, 1), [], T0 + S)
        assert ours(await d.tick(T0 + 2 * S)) == []

        async def steps(at: int) -> int:
            """The SQLite VM's steps on the reading connection of one tick at `at`."""
            count = [0]

            def counted() -> int:
                count[0] += 1
                return 0

            db._reader.set_progress_handler(counted, 1)
            try:
                assert ours(await d.tick(at)) == []
            finally:
                db._reader.set_progress_handler(None, 1)
            return count[0]

        few = await steps(T0 + 3 * S)
        # the most a key can pile up: 3,000 approvals ahead, each revoked before it began
        # (`MAX_OPEN` at once, not ended), 300 short ones that ended during the bypass, and
        # `MAX_OPEN` - 1 ahead, not revoked
        with db.transaction() as con:
            for i in range(3000 + 300 + MAX_OPEN - 1):
                at = T0 + (2 + i) * 3600 * S
                if i < 3000:
                    a = insert_approval(con, CHEM, "sis-bypass", *fields[:4], at, at + S, "x", T0)
                    revoke_approval(con, a.id, T0 + 2 * S, "x", "x")
                elif i < 3300:
                    at = T0 + S + i - 3000  # ended by the next tick
                    insert_approval(con, CHEM, "sis-bypass", *fields[:4], at, at + 1, "x", T0)
                else:
                    insert_approval(con, CHEM, "sis-bypass", *fields[:4], at, at + S, "x", T0)
        many = await steps(T0 + 4 * S)
        assert many < few * 3, (few, many)
        # and the statements it ran walk the index, no sort
        plans: list[str] = []
        db._reader.set_trace_callback(plans.append)
        assert ours(await d.tick(T0 + 5 * S)) == []
        db._reader.set_trace_callback(None)
        read = [s for s in plans if "FROM bypass_approvals" in s]
        assert len(read) == 2, read
        for sql in read:
            plan = " ".join(str(r[-1]) for r in db._reader.execute("EXPLAIN QUERY PLAN " + sql))
            assert "bypass_approvals_end" in plan and "TEMP B-TREE" not in plan, plan
        # the verdict is the same: covered until T0 + 1 h, then raised at that until
        (raised,) = ours(await d.tick(T0 + 3601 * S))
        assert raised.ts == T0 + 3600 * S and "expired" in raised.comment
    finally:
        await store.close()
        db.close()


async def test_the_value_is_the_hours_bypassed_at_the_events_own_time(tmp_path: Path) -> None:
    """After downtime the tick judges late: each event's value is the hours bypassed at its
    own stamp, and the clear at the bypass's end its whole length (not 0)."""
    reg = registry(within=60)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    flag = reg.sensor("sis-bypass")
    assert flag is not None
    h = 3600 * S
    try:
        d = Dispatcher(reg, store, db, Metrics())
        await d.judge(batch(flag.index, T0, 0.0, 1), [], T0)
        await d.judge(batch(flag.index, T0 + S, 1.0, 2), [], T0 + S)  # bypassed from T0 + 1 s
        (raised,) = ours(await d.tick(T0 + 2 * h))  # the hub was down: judged 2 h late
        assert raised.ts == T0 + 61 * S and raised.value == 0.02  # 60 s, not 2 h
        alarms = BypassAlarms(db, reg)
        fields = ("张工", "检修", "监护", None, T0 + 2 * h, T0 + 3 * h)
        _, events = alarms.record("sis-bypass", None, fields, "chem", T0 + 2 * h + S, ENTERPRISE)
        assert [(e.kind, e.ts, e.value) for e in events] == [("cleared", T0 + 2 * h + S, 2.0)]
        # down again past the until (the first one's disposal fell overdue meanwhile)
        (again,) = [e for e in ours(await d.tick(T0 + 5 * h)) if e.kind == "raised"]
        assert (again.ts, again.value) == (T0 + 3 * h, 3.0)
        await d.judge(batch(flag.index, T0 + 6 * h + S, 0.0, 3), [], T0 + 6 * h + S)
        (cleared,) = [e for e in ours(await d.tick(T0 + 8 * h)) if e.kind == "cleared"]
        assert (cleared.kind, cleared.ts, cleared.value) == ("cleared", T0 + 6 * h + S, 6.0)
        rows = db.query("SELECT value FROM alarms WHERE side = 128 ORDER BY id")
        assert rows == [(2.0,), (6.0,)]  # each alarm's value as of its last event
    finally:
        await store.close()
        db.close()


def test_the_dashboard_labels_the_long_bypass_level_in_both_languages() -> None:
    """The chem pack's 8 h level `bypassed_too_long` reads as words in the alarm list's zh
    and en tables (api/static/alarmstrings.js), not as its raw name."""
    text = (ROOT / "api" / "static" / "alarmstrings.js").read_text(encoding="utf-8")
    tables = text[text.index("export const STRINGS = {") :]
    zh = tables[tables.index("\n  zh: {") : tables.index("\n  en: {")]
    en = tables[tables.index("\n  en: {") : tables.index("\n};")]
    assert 'lvl_bypassed_too_long: "联锁旁路超时"' in zh
    assert 'lvl_bypassed_too_long: "bypassed too long"' in en
    pack = (ROOT / "profiles" / "rules" / "chem-process.yaml").read_text(encoding="utf-8")
    assert "name: bypassed_too_long" in pack


def test_the_docs_say_what_alarm_events_is_and_how_approvals_are_recorded() -> None:
    """docs/api.md read as if `alarm_events` were a list (it is a count); docs/rules.md did not
    say how the dashboard records one (it had no form then; its page now), nor whose approval
    clears the alarm, nor the bounds."""
    api_md = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    (post,) = [r for r in api_md.splitlines() if r.startswith("| `POST /api/v1/bypass-approvals`")]
    assert "`alarm_events`, a **count** (an integer, not a list)" in post
    assert "24 h before" in post and "409" in post and "`party`" in post
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    section = rules[rules.index("### Bypass approvals") : rules.index("## Late readings")]
    section = " ".join(section.split())
    for said in (
        "**In the dashboard**, **旁路审批 Bypass approvals** in the header opens the page",
        "An enterprise's own approval clears `bypass_unapproved`",
        "revoked by the centre's keys alone",
        "**24 h before** the recording",
        "at most **20** approvals not ended",
        "hours bypassed as of each event's own time",
    ):
        assert said in section, said
