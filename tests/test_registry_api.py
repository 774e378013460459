"""The registry over HTTP against a running hub (real Mosquitto, the embedded store): a change
takes effect without a restart, alarms of what changed are cleared and the others carry on,
changes are checked with field errors, recorded as revisions, exported and imported as YAML,
and kept over a restart."""

from __future__ import annotations

import time
from typing import Any

import aiomqtt
import httpx
import numpy as np
import orjson
import yaml

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_profiles
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec, HubConfig
from telemetry.registry import Registry, build_registry
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, mine_registry, running_hub
from services import free_port

L = TopicLayout()
TENANT, SITE = "north-coal", "face-1301"
DEV = f"/api/v1/registry/tenants/{TENANT}/sites/{SITE}/devices"
PROFILES, PACKS = load_profiles(ROOT / "profiles")
KEYS = [
    ApiKeySpec(name="root", sha256=hash_key("k-root"), role="admin"),
    ApiKeySpec(name="ops", sha256=hash_key("k-ops"), role="operator"),
    ApiKeySpec(name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)),
]
WEBHOOK = """
    subscriptions:
      - id: desk
        channel: {type: webhook, url: "http://127.0.0.1:9/hook", secret: s3cret-hmac}
"""


def build(config: HubConfig) -> Registry:
    return build_registry(config, PROFILES, PACKS, "api")


def payload(device: str, seq: int, ts: int, values: dict[str, float]) -> bytes:
    keys = tuple(values)
    n = len(keys)
    return encode(
        TelemetryBatch(
            "gw1",
            device,
            7,
            seq,
            keys,
            np.arange(n, dtype=np.uint16),
            np.full(n, ts, np.int64),
            np.array([values[k] for k in keys]),
            np.zeros(n, np.uint8),
        )
    )


def make_hub(tmp_path, broker: int, registry: Registry) -> Hub:
    return Hub(
        registry,
        HubSettings(data_dir=tmp_path / "data", broker_port=broker, api_port=free_port()),
        extra_keys=KEYS,
        build=build,
        config_source="hub.yaml",
    )


def auth(key: str = "k-root") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def alarms(api: httpx.AsyncClient, sensor: str, state: str = "active") -> list[Any]:
    r = await api.get("/api/v1/alarms", params={"sensor": sensor, "state": state}, headers=auth())
    r.raise_for_status()
    return list(r.json())


async def test_registry_changes_take_effect_without_a_restart(mosquitto, tmp_path):
    hub = make_hub(tmp_path, mosquitto.port, mine_registry(1502, 1.0))
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}")
        now = time.time_ns() // 1_000_000
        # T0 and T1 in alarm before any change (both at 1.0 %)
        topic = L.telemetry(TENANT, SITE, "kj-sub-3")
        await mq.publish(topic, payload("kj-sub-3", 1, now, {"ch4_t0": 1.1, "ch4_t1": 1.2}), qos=1)
        await eventually(lambda: alarms(api, "ch4-t1"), 10, "the T1 alarm")
        t0 = await eventually(lambda: alarms(api, "ch4-t0"), 10, "the T0 alarm")

        # 1. a new device with a sensor: its readings are taken at once
        device = {
            "id": "kj-sub-4",
            "profile": "coal-substation",
            "modbus": {"host": "127.0.0.1", "port": 1502, "unit": 4},
            "sensors": [
                {
                    "id": "ch4-t9",
                    "point": "ch4_t0",
                    "kind": "methane",
                    "rule": "coal-methane.face-t1",
                }
            ],
        }
        r = await api.post(DEV, json=device, headers=auth())
        assert r.status_code == 201, r.text
        rev_added = r.json()["rev"]
        assert r.headers["etag"] == f'"{rev_added}"'
        assert (await api.get("/api/v1/sensors/ch4-t9", headers=auth())).status_code == 200
        await mq.publish(
            L.telemetry(TENANT, SITE, "kj-sub-4"),
            payload("kj-sub-4", 1, now + 1000, {"ch4_t0": 1.3}),
            qos=1,
        )
        await eventually(lambda: alarms(api, "ch4-t9"), 10, "the new sensor's alarm")
        latest = await api.get("/api/v1/sensors/ch4-t9/latest", headers=auth())
        assert latest.json()["value"] == 1.3

        # 2. T1's rules changed: its alarm is cleared, it is judged afresh by the new levels
        t1 = await api.get(f"{DEV}/kj-sub-3/sensors/ch4-t1", headers=auth())
        spec = t1.json()
        spec.pop("rule")
        spec["levels"] = [{"name": "high", "tier": "orange", "above": 2.0, "recover": 1.8}]
        r = await api.put(f"{DEV}/kj-sub-3/sensors/ch4-t1", json=spec, headers=auth())
        assert r.status_code == 200, r.text
        assert await alarms(api, "ch4-t1") == []
        cleared = (await alarms(api, "ch4-t1", "cleared"))[0]
        assert cleared["events"][-1]["kind"] == "cleared"
        assert "configuration changed" in str(cleared["events"][-1])
        await mq.publish(topic, payload("kj-sub-3", 2, now + 2000, {"ch4_t1": 1.2}), qos=1)
        await mq.publish(topic, payload("kj-sub-3", 3, now + 3000, {"ch4_t1": 2.5}), qos=1)
        raised = await eventually(lambda: alarms(api, "ch4-t1"), 10, "T1 at its new level")
        assert raised[0]["level_name"] == "high" and raised[0]["started_ts"] == now + 3000

        # 3. T0 did not change: the same alarm is still open, not raised again
        still = await alarms(api, "ch4-t0")
        assert [a["id"] for a in still] == [t0[0]["id"]]
        assert [e["kind"] for e in still[0]["events"]] == ["raised"]

        # 4. removing a sensor: gone from the API, its alarm cleared
        r = await api.delete(f"{DEV}/kj-sub-4", headers=auth())
        assert r.status_code == 204, r.text
        assert (await api.get("/api/v1/sensors/ch4-t9", headers=auth())).status_code == 404
        assert await alarms(api, "ch4-t9") == []

        # 5. the revisions, newest first, and a rollback
        revs = (await api.get("/api/v1/config/revisions", headers=auth())).json()
        assert [r["source"] for r in revs] == ["api", "api", "api", "file"]
        assert revs[0]["running"] and revs[0]["actor"] == "root"
        r = await api.post(f"/api/v1/config/revisions/{rev_added}/restore", headers=auth())
        assert r.status_code == 200, r.text
        assert (await api.get("/api/v1/sensors/ch4-t9", headers=auth())).status_code == 200
        assert hub.metrics.render().count("hazardhub_config_reloads_total 4") == 1
        await api.aclose()


async def test_changes_are_checked_scoped_and_guarded(mosquitto, tmp_path):
    hub = make_hub(tmp_path, mosquitto.port, mine_registry(1502, 1.0))
    async with running_hub(hub):
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}")
        url = f"{DEV}/kj-sub-3/sensors/ch4-t1"
        spec = (await api.get(url, headers=auth())).json()
        etag = (await api.get(url, headers=auth())).headers["etag"]
        # a field error, located from the object
        bad = {**spec, "levels": [{"name": "x", "tier": "red", "above": "lots", "recover": 1}]}
        bad.pop("rule")
        r = await api.put(url, json=bad, headers=auth())
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        assert ["body", "levels", 0, "above"] in [e["loc"] for e in r.json()["errors"]]
        # a cross-reference error (no such point in the profile)
        r = await api.put(url, json={**spec, "point": "nope"}, headers=auth())
        assert r.status_code == 422 and "nope" in r.text
        # the id is the path's
        assert (await api.put(url, json={**spec, "id": "other"}, headers=auth())).status_code == 422
        # a dry run checks and changes nothing
        r = await api.put(
            url, json={**spec, "tag": "T1b"}, params={"dry_run": True}, headers=auth()
        )
        assert r.status_code == 200 and r.json()["dry_run"]
        assert (await api.get(url, headers=auth())).json()["tag"] == "T1"
        # optimistic concurrency: a change based on an old revision is refused
        assert (
            await api.put(url, json={**spec, "tag": "A"}, headers={**auth(), "If-Match": etag})
        ).status_code == 200
        r = await api.put(url, json={**spec, "tag": "B"}, headers={**auth(), "If-Match": etag})
        assert r.status_code == 412
        # a taken id, a missing object, a wrong method on a collection
        r = await api.post(f"{DEV}/kj-sub-3/sensors", json=spec, headers=auth())
        assert r.status_code == 409
        assert (await api.get(f"{DEV}/nope", headers=auth())).status_code == 404
        assert (
            await api.get("/api/v1/registry/tenants/north-coal/nope", headers=auth())
        ).status_code == 404
        assert (await api.delete(f"{DEV}", headers=auth())).status_code == 405
        # a point used twice in one device
        r = await api.post(
            f"{DEV}/kj-sub-3/sensors", json={**spec, "id": "ch4-t1-twin"}, headers=auth()
        )
        assert r.status_code == 422 and "used twice" in r.text
        # a plate another enterprise's vehicle has (written otherwise: one plate all the same)
        r = await api.post(
            "/api/v1/registry/tenants/north-coal/vehicles",
            json={"id": "truck-9", "plate": "苏a d1234", "class": "hazmat"},
            headers=auth(),
        )
        assert r.status_code == 422 and "is also acme-chem/tanker-01's" in r.text, r.text
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "plate"]]  # the posted one
        # only admins change; an enterprise sees only its own tenant
        assert (await api.put(url, json=spec, headers=auth("k-ops"))).status_code == 403
        assert (await api.get(url, headers=auth("k-chem"))).status_code == 404
        seen = (await api.get("/api/v1/registry/tenants", headers=auth("k-chem"))).json()
        assert [t["id"] for t in seen] == ["acme-chem"]
        assert (await api.get("/api/v1/config", headers=auth("k-ops"))).status_code == 403
        assert (await api.get("/api/v1/registry/tenants")).status_code == 401
        # a whole tenant goes, with its vehicles
        r = await api.delete("/api/v1/registry/tenants/acme-chem", headers=auth())
        assert r.status_code == 204
        assert (await api.get("/api/v1/vehicles", headers=auth())).json() == []
        await api.aclose()


async def test_export_import_keeps_secrets_and_a_restart_keeps_the_revision(
    mosquitto, tmp_path, caplog
):
    registry = mine_registry(1502, 1.0, WEBHOOK)
    hub = make_hub(tmp_path, mosquitto.port, registry)
    async with running_hub(hub):
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}")
        r = await api.get("/api/v1/config", headers=auth())
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
        assert "s3cret-hmac" not in r.text and "********" in r.text
        doc = yaml.safe_load(r.text)
        doc["tenants"][0]["name"] = "北方煤业 North Coal"
        r = await api.put(
            "/api/v1/config",
            content=yaml.safe_dump(doc, allow_unicode=True),
            params={"comment": "rename"},
            headers={**auth(), "Content-Type": "application/yaml"},
        )
        assert r.status_code == 200, r.text
        # the secret was kept, the change made
        assert hub.registry.config.tenants[1].subscriptions[0].channel.secret == "s3cret-hmac"
        assert hub.registry.config.tenants[0].name == "北方煤业 North Coal"
        bad = await api.put(
            "/api/v1/config",
            content=b"tenants: [",
            headers={**auth(), "Content-Type": "application/yaml"},
        )
        assert bad.status_code == 422
        await api.aclose()
    # a restart with the same file runs the newest revision
    again = make_hub(tmp_path, mosquitto.port, registry)
    assert again.registry.config.tenants[0].name == "北方煤业 North Coal"
    again.registrydb.close()
    again.statedb.close()
    # a changed file wins, and says loudly which revisions it drops (an operator restarting
    # after an edit lost the API's changes, a safety rule among them, without a word)
    changed = mine_registry(1502, 2.0, WEBHOOK)
    caplog.set_level("WARNING", logger="api.configadmin")
    third = make_hub(tmp_path, mosquitto.port, changed)
    assert third.registry.config.tenants[0].name == "北方煤业"  # the file's
    assert third.config is not None
    latest = third.registrydb.latest_revision()
    assert latest.source == "file" and latest.rev == 3
    # one revision is said as one ("revisions 2" read as a slip)
    assert "it replaces revision 2 made through the API" in latest.comment
    [warned] = [r.getMessage() for r in caplog.records if "NOT running" in r.getMessage()]
    assert "changes of revision 2 made through the API" in warned and "revision 3" in warned
    third.registrydb.close()
    third.statedb.close()


async def test_a_geofence_added_live_judges_the_next_position(mosquitto, tmp_path):
    hub = make_hub(tmp_path, mosquitto.port, mine_registry(1502, 1.0))
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}")
        area = {
            "kind": "forbidden",
            "id": "school",
            "polygon": [[30.0, 104.0], [30.0, 104.1], [30.1, 104.1], [30.1, 104.0]],
        }
        r = await api.post("/api/v1/registry/geofences", json=area, headers=auth())
        assert r.status_code == 201, r.text
        got = await api.get("/api/v1/registry/geofences/school", headers=auth())
        assert got.json() == area  # as given; unset fields take their defaults
        r = await api.get("/api/v1/registry/geofences", headers=auth("k-chem"))
        assert r.status_code == 403
        # the fleet settings its vehicles are judged by: an enterprise reads them (helper-250:
        # a transport company could not read its own route and limits), changes none
        route = {"kind": "corridor", "id": "r1", "vehicles": ["acme-chem/tanker-01"]}
        route |= {"polyline": [[30.0, 104.0], [30.2, 104.2]], "buffer_m": 500}
        r = await api.post("/api/v1/registry/geofences", json=route, headers=auth())
        assert r.status_code == 201, r.text
        whole = (await api.get("/api/v1/registry/fleet", headers=auth("k-ops"))).json()
        r = await api.get("/api/v1/registry/fleet", headers=auth("k-chem"))
        assert r.status_code == 200, r.text
        seen = r.json()
        assert [(f["id"], f.get("vehicles")) for f in seen["geofences"]] == [
            ("school", None),
            ("r1", ["tanker-01"]),
        ]
        assert {k: v for k, v in seen.items() if k != "geofences"} == {
            k: v for k, v in whole.items() if k != "geofences"
        }
        r = await api.put("/api/v1/registry/fleet", json=seen, headers=auth("k-chem"))
        assert r.status_code == 403
        r = await api.delete("/api/v1/registry/geofences/r1", headers=auth())
        assert r.status_code == 204
        # a bad one: a polygon of two points, located from the object
        bad = {**area, "id": "bad", "polygon": [[30.0, 104.0], [30.0, 104.1]]}
        r = await api.post("/api/v1/registry/geofences", json=bad, headers=auth())
        assert r.status_code == 422 and "three distinct" in r.text
        now = time.time_ns() // 1_000_000
        fix = {"ts": now, "lat": 30.05, "lon": 104.05, "speed_kmh": 30.0, "heading_deg": 0.0}
        await mq.publish(L.position("acme-chem", "tanker-01"), orjson.dumps(fix), qos=1)
        inside = await eventually(lambda: alarms(api, "tanker-01.speed"), 10, "the area alarm")
        assert inside[0]["side"] == "forbidden_area"
        # the map shows it to the tenant's own key as well
        fences = await api.get("/api/v1/geofences", headers=auth("k-chem"))
        assert [f["id"] for f in fences.json()] == ["school"]
        # the area removed: its alarm cannot clear by itself any more, the change clears it
        r = await api.delete("/api/v1/registry/geofences/school", headers=auth())
        assert r.status_code == 204
        assert await alarms(api, "tanker-01.speed") == []
        (done,) = await alarms(api, "tanker-01.speed", "cleared")
        assert done["side"] == "forbidden_area"
        assert "configuration changed" in str(done["events"][-1])
        await api.aclose()


def _renamed_through_the_api(tmp_path):
    """The demo's file read once by a `ConfigAdmin`, then its first tenant renamed through the
    API: (the file, the registry database, the document as renamed, the switch)."""
    import asyncio

    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB
    from hazardhub.settings import load

    config = tmp_path / "hub.yaml"
    config.write_text((ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8"), "utf-8")
    loaded = load(config)
    db = RegistryDB(tmp_path / "registry.db")

    async def switch(registry, rev):
        return None

    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(config))
    doc = document(loaded.config)
    doc["tenants"][0]["name"] = "changed through the API"
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="rename", source="api"))
    return config, db, doc, switch


def test_a_file_that_is_the_newest_revision_warns_of_nothing(tmp_path, caplog):
    """An operator who exports the running configuration into the file (as docs/api.md asks)
    and restarts drops nothing: no warning that the API's revisions are not running."""
    from api.configadmin import ConfigAdmin
    from hazardhub.settings import load

    config, db, doc, switch = _renamed_through_the_api(tmp_path)
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")  # the export, as is
    caplog.set_level("WARNING", logger="api.configadmin")
    again = ConfigAdmin(db, load(config).registry, switch)
    registry = again.startup(load(config).registry(), str(config))
    assert registry.config.tenants[0].name == "changed through the API"
    assert [r for r in caplog.records if "NOT running" in r.getMessage()] == []
    assert "replaces" not in db.latest_revision().comment
    db.close()


def test_a_revision_that_no_longer_checks_is_named_as_the_revision(tmp_path, caplog):
    """A revision saved through the API that a new hub refuses (a unit it now checks): the
    error named places of the file, which has none such, and the new revision's comment said
    the file changed, which it had not (helper-79)."""
    from api.configadmin import ConfigAdmin
    from hazardhub.settings import load
    from telemetry.errors import ConfigError

    config, db, _, switch = _renamed_through_the_api(tmp_path)
    rev = db.latest_revision().rev

    def refusing(cfg):  # the new hub's stricter check, naming its places after the file
        raise ConfigError(f"{config}: tenants.0.sites.0.devices.3.sensors.0.rule: units")

    caplog.set_level("WARNING", logger="api.configadmin")
    again = ConfigAdmin(db, refusing, switch)
    again.startup(load(config).registry(), str(config))
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"revision {rev}: tenants.0.sites.0.devices.3" in error and str(config) not in error
    comment = db.latest_revision().comment
    assert f"revision {rev} no longer checks" in comment and "changed" not in comment
    db.close()


def test_a_key_rotated_through_the_api_stays_rotated_when_the_file_wins(tmp_path, caplog):
    """helper-149: a key rotated through the API (PUT /config) came back to life, and its
    replacement stopped working, when a one-word edit of the file made the file win over the
    API's revisions. The keys the API took away stay away and those it made stay; the rest of
    the API's changes give way to the file as before (and the log says so)."""
    import asyncio

    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB
    from hazardhub.settings import load

    text = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
    keys = {
        "duty": {"name": "duty-operator", "sha256": hash_key("k-old-duty"), "role": "operator"},
        "view": {"name": "centre", "sha256": hash_key("k-view"), "role": "admin"},
    }
    doc = yaml.safe_load(text)
    doc["api_keys"] = list(keys.values())
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    db = RegistryDB(tmp_path / "registry.db")

    async def switch(registry, rev):
        return None

    loaded = load(config)
    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(config))
    rotated = document(loaded.config)
    new_duty = {"name": "duty-operator", "sha256": hash_key("k-new-duty"), "role": "operator"}
    rotated["api_keys"] = [new_duty, keys["view"]]
    rotated["tenants"][0]["name"] = "renamed through the API"
    asyncio.run(admin.change(lambda _d: rotated, actor="root", comment="rotate", source="api"))
    # a one-word edit of the file, which still holds the old key, and a key of its own
    doc["tenants"][1]["name"] = "edited in the file"
    ops = {"name": "ops-file", "sha256": hash_key("k-ops"), "role": "admin"}
    doc["api_keys"] = [keys["duty"], keys["view"], ops]
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    caplog.set_level("WARNING", logger="api.configadmin")
    again = ConfigAdmin(db, load(config).registry, switch)
    registry = again.startup(load(config).registry(), str(config))
    running = {k.sha256 for k in registry.config.api_keys}
    assert running == {hash_key("k-new-duty"), hash_key("k-view"), hash_key("k-ops")}
    assert registry.config.tenants[1].name == "edited in the file"  # the file wins otherwise
    assert registry.config.tenants[0].name != "renamed through the API"
    said = [r.getMessage() for r in caplog.records]
    assert any("'duty-operator' of the file was taken away" in m for m in said), said
    assert any("NOT running" in m for m in said)
    # the next start reads the same file: the revision that runs keeps the keys
    third = ConfigAdmin(db, load(config).registry, switch)
    assert {
        k.sha256 for k in third.startup(load(config).registry(), str(config)).config.api_keys
    } == running
    # helper-158: a second edit of the file, which still names the old key, brought it back
    doc["tenants"][1]["name"] = "edited in the file again"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    fourth = ConfigAdmin(db, load(config).registry, switch)
    again_keys = fourth.startup(load(config).registry(), str(config)).config.api_keys
    assert {k.sha256 for k in again_keys} == running
    # a key the API narrowed (an admin made a tenant's viewer) stays narrowed over an edit
    tenant = doc["tenants"][0]["id"]

    def narrowed(d):
        for k in d["api_keys"]:
            if k["name"] == "centre":
                k.update(role="viewer", tenants=[tenant])
        return d

    asyncio.run(fourth.change(narrowed, actor="root", comment="narrow", source="api"))
    doc["tenants"][1]["name"] = "edited a third time"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    fifth = ConfigAdmin(db, load(config).registry, switch)
    started = fifth.startup(load(config).registry(), str(config))
    keys_now = {k.name: k for k in started.config.api_keys}
    assert (keys_now["centre"].role, keys_now["centre"].tenants) == ("viewer", (tenant,))
    db.close()


def test_the_start_says_which_configuration_runs(tmp_path, caplog):
    """An engineer who changed the configuration could not tell from the hub's start whether
    the file or a revision made through the API was running (helper-236's commissioning): each
    start now says it in one line, with the revision."""
    from api.configadmin import ConfigAdmin
    from api.registrydb import RegistryDB
    from hazardhub.settings import load

    def said() -> list[str]:
        lines = [
            r.getMessage() for r in caplog.records if "running configuration" in r.getMessage()
        ]
        caplog.clear()
        return lines

    async def switch(registry, rev):
        return None

    caplog.set_level("INFO", logger="api.configadmin")
    config = tmp_path / "hub.yaml"
    config.write_text((ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8"), "utf-8")
    db = RegistryDB(tmp_path / "registry.db")

    def start() -> int:
        admin = ConfigAdmin(db, load(config).registry, switch)
        admin.startup(load(config).registry(), str(config))
        return admin.rev

    rev = start()
    assert said() == [
        f"running configuration revision {rev}: the file {config}, read for the first time"
    ]
    assert start() == rev
    assert said() == [
        f"running configuration revision {rev}: the file {config}, unchanged since it was last read"
    ]
    edited = yaml.safe_load(config.read_text("utf-8"))
    edited["tenants"][0]["name"] = "edited in the file"
    config.write_text(yaml.safe_dump(edited, allow_unicode=True), "utf-8")
    rev = start()
    assert said() == [
        f"running configuration revision {rev}: the file {config}, changed since it was last read"
    ]
    db.close()
    (tmp_path / "api").mkdir()
    config2, db2, _, _ = _renamed_through_the_api(tmp_path / "api")
    caplog.clear()
    admin = ConfigAdmin(db2, load(config2).registry, switch)
    admin.startup(load(config2).registry(), str(config2))
    assert said() == [
        f"running configuration revision {admin.rev} (api), newer than the file {config2}, "
        "which has not changed since it was last read"
    ]
    db2.close()


def test_a_tenants_fleet_settings_show_its_corridors_and_exemptions_only() -> None:
    """Another enterprise's approved route and night-ban exemption are its own business: a key
    of some tenants is shown the corridors and exempt coaches of its own vehicles alone."""
    from api.auth import Principal
    from api.configroutes import seen_fences, seen_vehicles
    from telemetry.registry import parse_document

    two = """
version: 1
tenants:
  - {id: a, vehicles: [{id: v1, plate: 苏A1, class: coach}]}
  - {id: b, vehicles: [{id: v2, plate: 苏B1, class: coach}, {id: v3, plate: 苏B2, class: coach}]}
"""
    reg = build(parse_document(two, HubConfig, "two.yaml"))
    fences = [
        {"kind": "speed_zone", "id": "z"},
        {"kind": "corridor", "id": "ra", "vehicles": ["v1", "b/v3"]},
        {"kind": "corridor", "id": "rb", "vehicles": ["v2"]},
    ]
    a = Principal("a", "enterprise", frozenset({"a"}))
    b = Principal("b", "viewer", frozenset({"b"}))
    assert seen_fences(reg, a, fences) == [fences[0], {**fences[1], "vehicles": ["v1"]}]
    assert seen_fences(reg, b, fences) == [fences[0], {**fences[1], "vehicles": ["v3"]}, fences[2]]
    assert seen_vehicles(reg, a, ["v1", "v2", "b/v3"]) == ["v1"]
    assert seen_vehicles(reg, b, ["v1", "v2", "b/v3"]) == ["v2", "v3"]
