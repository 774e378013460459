"""The HTTP API: authentication, tenant scoping (404 for other tenants' objects), readings,
alarms."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState, evaluate
from alerts.statedb import StateDB
from alerts.table import compile_table
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch, StoreError
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import ROOT, mine_registry

KEYS = {
    "admin": ("k-admin", ApiKeySpec(name="admin", sha256=hash_key("k-admin"), role="admin")),
    "coal": (
        "k-coal",
        ApiKeySpec(
            name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)
        ),
    ),
    "chem": (
        "k-chem",
        ApiKeySpec(
            name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)
        ),
    ),
    "viewer": (
        "k-view",
        ApiKeySpec(name="view", sha256=hash_key("k-view"), role="viewer", tenants=("north-coal",)),
    ),
    "coal-admin": (
        "k-coal-admin",
        ApiKeySpec(
            name="coal-admin",
            sha256=hash_key("k-coal-admin"),
            role="admin",
            tenants=("north-coal",),
        ),
    ),
}


@pytest.fixture
async def api(tmp_path):
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    t1 = reg.sensor("ch4-t1").index
    n = 4
    batch = ReadingBatch(
        np.full(n, t1, np.int32),
        np.array([1000, 2000, 3000, 4000], np.int64),
        np.array([0.5, 1.2, 1.6, 0.4]),
        np.zeros(n, np.uint8),
        np.zeros(n, np.int64),
        np.arange(n, dtype=np.int64),
    )
    await store.write_readings(batch)
    table = compile_table(reg.sensors)
    _, tr, _ = evaluate(
        table, CoreState.empty(len(reg.sensors)), batch.sensor, batch.ts, batch.value, batch.quality
    )
    AlarmBook(db, reg, table).apply(tr, 5000)
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([k for _, k in KEYS.values()])))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client
    await store.close()
    db.close()


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who][0]}"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sensors",
        "/api/v1/alarms",
        "/api/v1/vehicles",
        "/api/v1/sensors/ch4-t1/latest",
        "/metrics",
    ],
)
async def test_every_route_needs_a_valid_key(api, path):
    assert (await api.get(path)).status_code == 401
    assert (await api.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await api.get(path, headers={"Authorization": "Basic eDp5"})).status_code == 401


async def test_open_routes(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).status_code == 200
    docs = await api.get("/docs")
    assert docs.status_code == 200
    # the interactive docs load nothing from outside: monitoring centres are often offline
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', docs.text))
    for asset in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', docs.text):
        served = await api.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    spec = (await api.get("/openapi.json")).json()
    assert "/api/v1/alarms" in spec["paths"]


async def test_enterprise_sees_only_its_tenant(api):
    coal = {s["id"] for s in (await api.get("/api/v1/sensors", headers=auth("coal"))).json()}
    chem = {s["id"] for s in (await api.get("/api/v1/sensors", headers=auth("chem"))).json()}
    assert "ch4-t1" in coal and "tanker-01.speed" not in coal
    assert chem == {"tanker-01.speed"}
    # another tenant's objects answer 404, exactly like ids that do not exist
    for path in (
        "/api/v1/sensors/ch4-t1",
        "/api/v1/sensors/ch4-t1/latest",
        "/api/v1/sensors/ch4-t1/history?start=0&end=9999",
    ):
        r = await api.get(path, headers=auth("chem"))
        missing = await api.get(path.replace("ch4-t1", "no-such-sensor"), headers=auth("chem"))
        assert r.status_code == missing.status_code == 404
    assert (await api.get("/api/v1/alarms", headers=auth("chem"))).json() == []
    alarms = (await api.get("/api/v1/alarms", headers=auth("coal"))).json()
    assert len(alarms) == 1
    assert (
        await api.get(f"/api/v1/alarms/{alarms[0]['id']}", headers=auth("chem"))
    ).status_code == 404
    assert (await api.get("/api/v1/vehicles", headers=auth("coal"))).json() == []
    # a list narrowed to another tenant is 404 like one that does not exist, not an empty 200
    for path in (
        "/api/v1/alarms",
        "/api/v1/sensors",
        "/api/v1/sites",
        "/api/v1/alarm-quality/rate?start=0&end=9999",
        "/api/v1/alarm-quality/bad-actors?start=0&end=9999",
    ):
        sep = "&" if "?" in path else "?"
        other = await api.get(f"{path}{sep}tenant=north-coal", headers=auth("chem"))
        nobody = await api.get(f"{path}{sep}tenant=no-such", headers=auth("chem"))
        own = await api.get(f"{path}{sep}tenant=acme-chem", headers=auth("chem"))
        assert (other.status_code, nobody.status_code, own.status_code) == (404, 404, 200), path


async def test_a_history_answer_is_bounded(api, monkeypatch):
    """start=0&end=2**53 read every reading of a sensor into the hub's memory, from any key
    (helper-89). An answer holds at most MAX_HISTORY_ROWS rows: more is a 422 that says how to
    ask instead."""
    from api import sensors as routes

    monkeypatch.setattr(routes, "MAX_HISTORY_ROWS", 2)
    url = "/api/v1/sensors/ch4-t1/history"
    r = await api.get(url, params={"start": 0, "end": 2**53}, headers=auth("coal"))
    assert r.status_code == 422 and "more than 2 readings" in r.json()["detail"]
    r = await api.get(url, params={"start": 0, "end": 2500}, headers=auth("coal"))
    assert r.status_code == 200 and len(r.json()) == 2
    r = await api.get(url, params={"start": 0, "end": 2**53, "every": 1000}, headers=auth("coal"))
    assert r.status_code == 422 and "windows of 1000 ms" in r.json()["detail"]
    # windows are aligned to the epoch: [1000, 4001) touches three of 1.5 s (helper-90)
    r = await api.get(
        url,
        params={"start": 1000, "end": 4001, "every": 1500, "aggregate": "count"},
        headers=auth("coal"),
    )
    assert r.status_code == 422
    # and a vehicle's track: a week at most in one answer
    ok = await api.get(
        "/api/v1/vehicles/tanker-01/track",
        params={"start": 0, "end": 7 * 86_400_000},
        headers=auth("admin"),
    )
    r = await api.get(
        "/api/v1/vehicles/tanker-01/track", params={"start": 0, "end": 2**53}, headers=auth("admin")
    )
    assert ok.status_code == 200 and r.status_code == 422 and "at most 7 days" in r.text


async def test_latest_history_and_alarm_timeline(api):
    latest = (await api.get("/api/v1/sensors/ch4-t1/latest", headers=auth("viewer"))).json()
    assert latest == {
        "sensor": "ch4-t1",
        "ts": 4000,
        "value": 0.4,
        "quality": 0,
        "quality_name": "good",
    }
    assert (
        await api.get("/api/v1/sensors/ch4-t0/latest", headers=auth("viewer"))
    ).status_code == 404
    hist = (
        await api.get(
            "/api/v1/sensors/ch4-t1/history", params={"start": 0, "end": 3500}, headers=auth("coal")
        )
    ).json()
    assert [p["value"] for p in hist] == [0.5, 1.2, 1.6]
    assert [(p["quality"], p["quality_name"]) for p in hist] == [(0, "good")] * 3
    agg = (
        await api.get(
            "/api/v1/sensors/ch4-t1/history",
            params={"start": 0, "end": 5000, "every": 2000, "aggregate": "max"},
            headers=auth("coal"),
        )
    ).json()
    assert agg == [{"ts": 0, "value": 0.5}, {"ts": 2000, "value": 1.6}, {"ts": 4000, "value": 0.4}]
    (alarm,) = (await api.get("/api/v1/alarms", headers=auth("admin"))).json()
    assert alarm["state"] == "cleared" and alarm["peak_level"] == 2
    assert [(e["kind"], e["ts"]) for e in alarm["events"]] == [
        ("raised", 2000),
        ("escalated", 3000),
        ("cleared", 4000),
    ]
    active = (
        await api.get("/api/v1/alarms", params={"state": "active"}, headers=auth("admin"))
    ).json()
    assert active == []
    assert (
        await api.get("/api/v1/alarms", params={"state": "bogus"}, headers=auth("admin"))
    ).status_code == 422


async def test_metrics_for_admins_and_operators_only(api):
    r = await api.get("/metrics", headers=auth("admin"))
    assert r.status_code == 200 and "hazardhub_readings_total" in r.text
    assert (await api.get("/metrics", headers=auth("coal"))).status_code == 403
    # the counters are the whole hub's: an admin of some tenants does not read them
    r = await api.get("/metrics", headers=auth("coal-admin"))
    assert r.status_code == 403 and "every tenant" in r.text


async def test_metrics_include_the_store_spool(tmp_path):
    from ingest.store.buffered import BufferedStore

    reg = mine_registry(1502, 1.0)
    store = BufferedStore(SqliteStore(reg, tmp_path / "ts.db"), reg, tmp_path / "spool")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([KEYS["admin"][1]])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            text = (await client.get("/metrics", headers=auth("admin"))).text
    finally:
        await store.close()
        db.close()
    assert "hazardhub_store_spool_pending_records 0" in text
    assert "hazardhub_store_inner_up" in text


async def test_dashboard_is_served_without_external_resources(api):
    page = await api.get("/")
    assert page.status_code == 200 and "<title>hazardhub</title>" in page.text
    js = await api.get("/static/app.js")
    assert js.status_code == 200
    for text in (page.text, js.text, (await api.get("/static/app.css")).text):
        assert "http://" not in text and "https://" not in text  # no CDN, no tiles
    assert "/api/v1/stream" in js.text and "Authorization" in js.text


async def test_latest_of_many_sensors_is_tenant_scoped(api):
    mine = (await api.get("/api/v1/latest", headers=auth("coal"))).json()
    assert [x["sensor"] for x in mine] == ["ch4-t1"]
    assert (await api.get("/api/v1/latest", headers=auth("chem"))).json() == []
    asked = await api.get(
        "/api/v1/latest", params={"sensor": ["ch4-t1", "nope"]}, headers=auth("chem")
    )
    # another tenant's sensor and none of that name: 404 alike (tests/test_api_sensor_filters.py)
    assert asked.status_code == 404 and "'ch4-t1', 'nope'" in asked.json()["detail"]


# errors as RFC 9457 problem details; request size limits -------------------------------------


async def test_errors_are_problem_details(api):
    r = await api.get("/api/v1/sensors/nope", headers=auth("admin"))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://hazardhub.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "sensor 'nope' not found",
        "instance": "/api/v1/sensors/nope",
    }
    r = await api.get("/api/v1/alarms")
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = await api.get("/api/v1/alarms", params={"limit": 0}, headers=auth("admin"))
    body = r.json()
    assert r.status_code == 422 and body["type"].endswith("/unprocessable-entity")
    assert [e["loc"] for e in body["errors"]] == [["query", "limit"]]
    assert body["detail"].startswith("query.limit: ")


async def test_request_bodies_over_one_mib_are_refused(api):
    big = b"{" + b" " * (1 << 20) + b"}"
    r = await api.put("/api/v1/subscriptions", content=big, headers=auth("admin"))
    assert r.status_code == 413 and r.json()["status"] == 413

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 65536

    r = await api.put("/api/v1/subscriptions", content=chunks(), headers=auth("admin"))
    assert r.status_code == 413
    # a body of a normal size goes through to validation
    r = await api.put("/api/v1/subscriptions", json={"tenant": "x"}, headers=auth("admin"))
    assert r.status_code == 422


async def test_a_viewer_gets_403_on_every_write_route_before_its_body_is_read(api):
    """Every write route (from the OpenAPI document) answers a viewer 403 even for a body that
    does not validate: the body is not judged for a key that may not write (JSON that does not
    parse at all too: tests/test_api_tenancy.py)."""
    spec = (await api.get("/openapi.json")).json()
    writes = [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("post", "put", "delete", "patch")
    ]
    assert len(writes) >= 10, writes
    for method, path in writes:
        r = await api.request(method, path, json={"bogus": [1]}, headers=auth("viewer"))
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    # a key that may write gets the body's error
    r = await api.post("/api/v1/alarms/1/shelve", json={"bogus": [1]}, headers=auth("coal"))
    assert r.status_code == 422


async def test_readings_answer_503_while_the_store_is_down(tmp_path, caplog):
    """InfluxDB away: the reading routes answer a 503 problem (retry later) without the
    store's address, not a bare 500 with a traceback in the log."""
    from ingest.store.influx import InfluxStore

    from services import free_port

    reg = mine_registry(1502, 1.0)
    port = free_port()  # nothing listens there
    store = InfluxStore(reg, f"http://admin:s3cret@127.0.0.1:{port}", timeout_s=0.5)
    with pytest.raises(StoreError) as failed:  # its client is made, its database cannot be
        await store.open()
    # the error, which the log repeats while InfluxDB is away, names the server, not the
    # password of its URL (helper-78)
    assert f"127.0.0.1:{port}" in str(failed.value) and "s3cret" not in str(failed.value)
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([KEYS["admin"][1]])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            for path, params in (
                ("/api/v1/sensors/ch4-t1/latest", {}),
                ("/api/v1/sensors/ch4-t1/history", {"start": 0, "end": 10_000}),
                ("/api/v1/latest", {"sensor": "ch4-t1"}),
            ):
                r = await client.get(path, params=params, headers=auth("admin"))
                assert r.status_code == 503, (path, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.headers["retry-after"] == "10"
                assert "store does not answer" in r.json()["detail"]
                assert str(port) not in r.text
            # the log, which says each failed read, does not say the URL's password either
            logged = [rec.getMessage() for rec in caplog.records]
            assert logged and not any("s3cret" in m for m in logged)
    finally:
        await store.close()
        db.close()


async def test_a_sensor_says_everything_it_is_judged_by(tmp_path) -> None:
    """An enterprise's engineer reads from `GET /sensors/{id}` what the hub judges the sensor by:
    its levels with their delays and samples in a row, rate of rise, early warning, frozen
    check, the protective action verified, suppression by design, and a group's members (89:
    the delays were not shown, so a level reached without an alarm looked like a fault)."""
    from pathlib import Path

    import yaml

    from hazardhub.settings import load_registry

    root = Path(__file__).resolve().parent.parent
    doc = yaml.safe_load((root / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    farm = doc["tenants"][0]["sites"][0]
    t101, pressure = farm["devices"][0]["sensors"][:2]
    assert t101["id"] == "t101-level" and pressure["id"] == "t101-pressure"
    t101["rule"] = "chem-process.tank-level-hilo"  # with on/off delays
    t101["rate"] = {"per_min": 0.2, "window_s": 120, "tier": "orange"}
    t101["early_warning"] = {"window_s": 60, "horizon_s": 300}
    t101["suppress_when"] = [{"sensor": "sis-inlet-trip", "above": 0.5}]
    pressure["frozen"] = {"after_s": 600, "band": 0.001}
    t101["maintenance"] = {"after_s": 3600, "tier": "orange", "action": "联系仪表班"}
    farm["groups"] = [
        {
            "id": "dike-101",
            "sensors": ["gd-101a", "gd-101b"],
            "k": 2,
            "at_level": 1,
            "count_failed": True,
        }
    ]
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    reg = load_registry(path)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    keys = KeyRing(
        [
            ApiKeySpec(
                name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)
            ),
            ApiKeySpec(
                name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)
            ),
        ]
    )
    app = create_app(AppContext(reg, store, db, Metrics(), keys))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            chem = {"Authorization": "Bearer k-chem"}
            level = (await client.get("/api/v1/sensors/t101-level", headers=chem)).json()
            hi, hihi, lo, lolo = level["levels"]
            assert (hi["name"], hi["on_delay_s"], hi["off_delay_s"]) == ("hi", 5.0, 10.0)
            assert (hihi["on_delay_s"], hihi["off_delay_s"], lolo["on_delay_s"]) == (2.0, 0.0, 2.0)
            assert (lo["on_samples"], lo["off_samples"]) == (1, 1)
            assert level["rate"]["per_min"] == 0.2 and level["rate"]["window_s"] == 120
            assert level["rate"]["tier"] == "orange"
            assert level["early_warning"]["horizon_s"] == 300
            assert level["suppress_when"] == [
                {"sensor": "sis-inlet-trip", "above": 0.5, "alarm": False}
            ]
            assert level["frozen"] is None and level["verify"] is None
            assert level["members"] == [] and level["vote_level"] is None
            assert level["count_failed"] is None  # not a group
            # calibration and manual time limited: its own limit, else its rule's (the gas
            # packs' 2 h); a group's failed members counting as at the level (helper-120)
            assert level["maintenance"] == {
                "after_s": 3600.0,
                "tier": "orange",
                "action": "联系仪表班",
            }
            gas = (await client.get("/api/v1/sensors/gd-101a", headers=chem)).json()
            assert gas["maintenance"]["after_s"] == 7200, gas
            frozen = (await client.get("/api/v1/sensors/t101-pressure", headers=chem)).json()
            assert frozen["frozen"]["after_s"] == 600 and frozen["frozen"]["band"] == 0.001
            group = (await client.get("/api/v1/sensors/dike-101", headers=chem)).json()
            assert (group["members"], group["vote_level"]) == (["gd-101a", "gd-101b"], 1)
            assert group["count_failed"] is True
            assert group["levels"][0]["above"] == 2
            # the face's methane names its feed, to its own tenant only
            coal = {"Authorization": "Bearer k-coal"}
            t1 = (await client.get("/api/v1/sensors/face1301-ch4-t1", headers=coal)).json()
            assert t1["verify"]["sensor"] == "face1301-feed" and t1["verify"]["within_s"] == 2
            assert t1["verify"]["expect_below"] == 0.5 and "expect_above" not in t1["verify"]
            # the methane pack's calibration interval (标校超期, 15 d); none on a tank level
            assert t1["calibration_due"] == {"every_days": 15.0, "tier": "yellow", "action": ""}
            assert level["calibration_due"] is None
            listed = (await client.get("/api/v1/sensors", headers=chem)).json()
            assert "face1301-feed" not in str(listed)
            assert {s["id"]: s for s in listed}["t101-level"] == level
    finally:
        await store.close()
        db.close()


async def test_the_rule_packs_in_force_are_listed_with_the_keys_own_sensor_counts(tmp_path) -> None:
    """`GET /rule-packs` lists every pack sensors may name: the shipped files' and the
    configuration's own (81: `/registry/rule-packs` showed only the latter, so the engineer
    could not read what `coal-methane.face-t1` means). A rule's count is of the key's sensors."""
    extra = """
rule_packs:
  - name: site-gas
    description: the mine's own stricter face rule
    source: the mine's safety rules
    rules:
      face:
        kinds: [methane]
        levels:
          - {name: alarm, tier: yellow, above: 0.8, recover: 0.7, on_delay_s: 3}
"""
    reg = mine_registry(1502, 1.0, extra)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([k for _, k in KEYS.values()])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as client:
            r = await client.get("/api/v1/rule-packs", headers=auth("coal"))
            assert r.status_code == 200, r.text
            packs = {p["name"]: p for p in r.json()}
            shipped = {f.stem for f in (ROOT / "profiles" / "rules").glob("*.yaml")}
            assert set(packs) == shipped | {"site-gas"}
            assert packs["site-gas"]["origin"] == "configuration"
            assert {packs[n]["origin"] for n in shipped} == {"profiles"}
            (face,) = packs["site-gas"]["rules"]
            assert face["name"] == "site-gas.face" and face["sensors"] == 0
            assert face["spec"]["levels"][0]["on_delay_s"] == 3
            methane = {x["name"]: x for x in packs["coal-methane"]["rules"]}
            t1 = methane["coal-methane.face-t1"]
            assert t1["sensors"] == 1  # the coal key's ch4-t1
            assert [lv["above"] for lv in t1["spec"]["levels"]] == [1.0, 1.5]
            # another enterprise reads the same numbers, but counts none of coal's sensors
            r = await client.get("/api/v1/rule-packs/coal-methane", headers=auth("chem"))
            counts = {x["name"]: x["sensors"] for x in r.json()["rules"]}
            assert counts["coal-methane.face-t1"] == 0 and set(counts.values()) == {0}
            r = await client.get("/api/v1/rule-packs/no-such-pack", headers=auth("coal"))
            assert r.status_code == 404 and "no-such-pack" in r.json()["detail"]
            assert (await client.get("/api/v1/rule-packs")).status_code == 401
    finally:
        await store.close()
        db.close()


async def test_a_sensor_out_of_service_says_so_by_whom_why_and_since(tmp_path):
    """A sensor taken out of service looked like any other on its tile: its readings raise no
    alarm, and the dispatcher could not tell. The sensor says so, in its tenant's lists only."""
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    with db.transaction() as con:
        db.set_out_of_service(con, "ch4-t1", "north-coal", "centre-op", "recalibration", 7000)
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing([k for _, k in KEYS.values()])))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as api:
            listed = (await api.get("/api/v1/sensors", headers=auth("coal"))).json()
            one = (await api.get("/api/v1/sensors/ch4-t1", headers=auth("coal"))).json()
            chem = (await api.get("/api/v1/sensors", headers=auth("chem"))).json()
    finally:
        await store.close()
        db.close()
    out = {s["id"]: s for s in listed if s["out_of_service"]}
    assert list(out) == ["ch4-t1"]
    said = {k: v for k, v in one.items() if k.startswith("out_of_service")}
    assert said == {
        "out_of_service": True,
        "out_of_service_by": "centre-op",
        "out_of_service_reason": "recalibration",
        "out_of_service_since": 7000,
    }
    assert out["ch4-t1"] == one
    assert not any(s["out_of_service"] or s["out_of_service_by"] for s in chem)
