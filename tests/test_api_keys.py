"""API keys made through the API: shown once, kept as digests, expiring, revocable; who may make
which key; the key ring authenticating them against a real registry database."""

from __future__ import annotations

import csv
import io
import sqlite3

import httpx
import pytest

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from api.registrydb import RegistryDB
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import mine_registry

DAY = 86_400_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


CONFIG_KEYS = [
    ApiKeySpec(name="root", sha256=hash_key("k-root"), role="admin"),
    ApiKeySpec(name="ops", sha256=hash_key("k-ops"), role="operator"),
    ApiKeySpec(name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)),
    ApiKeySpec(name="chem", sha256=hash_key("k-chem"), role="enterprise", tenants=("acme-chem",)),
    ApiKeySpec(name="view", sha256=hash_key("k-view"), role="viewer", tenants=("north-coal",)),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def hub(tmp_path):
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db")
    rdb = RegistryDB(tmp_path / "registry.db")
    clock = Clock()
    ring = KeyRing(CONFIG_KEYS, rdb, clock=clock)
    app = create_app(AppContext(reg, store, db, Metrics(), ring))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client, clock, tmp_path
    await store.close()
    db.close()
    rdb.close()


async def test_made_key_is_shown_once_and_stored_only_as_digest(hub):
    client, _, tmp_path = hub
    r = await client.post(
        "/api/v1/api-keys",
        json={"name": "wall", "role": "viewer", "tenants": ["north-coal"]},
        headers=bearer("k-root"),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    key = body["key"]
    assert key.startswith("hh_") and len(key) > 40
    assert body["state"] == "active" and body["created_by"] == "root"
    assert body["expires_ms"] - body["created_ms"] == 90 * DAY
    assert r.headers["cache-control"] == "no-store"
    # the new key works, with its role and scope
    sensors = await client.get("/api/v1/sensors", headers=bearer(key))
    assert sensors.status_code == 200
    assert {s["tenant"] for s in sensors.json()} == {"north-coal"}
    # the list never shows it again
    listed = await client.get("/api/v1/api-keys", headers=bearer("k-root"))
    assert "key" not in next(k for k in listed.json() if k["name"] == "wall")
    assert key not in listed.text
    # on disk: the digest, not the key
    raw = (tmp_path / "registry.db").read_bytes()
    wal = tmp_path / "registry.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert key.encode() not in raw
    conn = sqlite3.connect(tmp_path / "registry.db")
    (digest,) = conn.execute("SELECT sha256 FROM api_keys WHERE name = 'wall'").fetchone()
    conn.close()
    assert digest == hash_key(key)


async def test_key_expires(hub):
    client, clock, _ = hub
    r = await client.post(
        "/api/v1/api-keys",
        json={"name": "short", "role": "operator", "expires_in_days": 2},
        headers=bearer("k-root"),
    )
    key = r.json()["key"]
    assert (await client.get("/api/v1/sensors", headers=bearer(key))).status_code == 200
    clock.now += 2 * DAY - 1
    assert (await client.get("/api/v1/sensors", headers=bearer(key))).status_code == 200
    clock.now += 1
    assert (await client.get("/api/v1/sensors", headers=bearer(key))).status_code == 401
    listed = (await client.get("/api/v1/api-keys", headers=bearer("k-root"))).json()
    assert next(k for k in listed if k["name"] == "short")["state"] == "expired"


async def test_revoked_key_stops_at_once_and_revoking_again_changes_nothing(hub):
    client, _, _ = hub
    key = (
        await client.post(
            "/api/v1/api-keys",
            json={"name": "script", "role": "enterprise", "tenants": ["north-coal"]},
            headers=bearer("k-coal"),
        )
    ).json()["key"]
    assert (await client.get("/api/v1/alarms", headers=bearer(key))).status_code == 200
    r = await client.delete("/api/v1/api-keys/script", headers=bearer("k-coal"))
    assert r.status_code == 204
    assert (await client.get("/api/v1/alarms", headers=bearer(key))).status_code == 401
    again = await client.delete("/api/v1/api-keys/script", headers=bearer("k-root"))
    assert again.status_code == 204
    listed = (await client.get("/api/v1/api-keys", headers=bearer("k-root"))).json()
    row = next(k for k in listed if k["name"] == "script")
    assert row["state"] == "revoked" and row["revoked_by"] == "coal"


async def test_key_survives_a_new_key_ring(hub, tmp_path):
    client, clock, _ = hub
    key = (
        await client.post(
            "/api/v1/api-keys", json={"name": "ops2", "role": "operator"}, headers=bearer("k-root")
        )
    ).json()["key"]
    rdb = RegistryDB(tmp_path / "registry.db")  # a hub restart reads the same file
    try:
        # (with the configuration's keys: its maker, root, is one of them)
        principal = KeyRing(CONFIG_KEYS, rdb, clock=clock).authenticate(key)
        assert principal is not None and principal.role == "operator"
        assert principal.tenants is None
    finally:
        rdb.close()


async def make(client, who: str, name: str, role: str, days: int, tenants=("north-coal",)):
    r = await client.post(
        "/api/v1/api-keys",
        json={"name": name, "role": role, "tenants": list(tenants), "expires_in_days": days},
        headers=bearer(who),
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_key_never_outlives_the_key_that_made_it(hub):
    """A short-lived (or leaked) key cannot buy a lasting one (security audit, helper-107): a
    key made by a key expires with it at the latest, and stops when it is revoked, and so do
    the keys that key made."""
    client, clock, _ = hub
    k1 = await make(client, "k-root", "k1", "admin", 1)
    k2 = await make(client, k1["key"], "k2", "enterprise", 3650)
    k3 = await make(client, k2["key"], "k3", "viewer", 3650)
    assert k1["expires_ms"] == clock.now + DAY
    assert k2["expires_ms"] == k3["expires_ms"] == k1["expires_ms"]  # capped at the maker's
    for k in (k1, k2, k3):
        me = await client.get("/api/v1/me", headers=bearer(k["key"]))
        assert me.status_code == 200 and me.json()["expires_ms"] == k1["expires_ms"]
    assert (await client.delete("/api/v1/api-keys/k1", headers=bearer("k-root"))).status_code == 204
    for k in (k1, k2, k3):
        assert (await client.get("/api/v1/me", headers=bearer(k["key"]))).status_code == 401
    listed = {
        k["name"]: k["state"]
        for k in (await client.get("/api/v1/api-keys", headers=bearer("k-root"))).json()
    }
    assert (listed["k1"], listed["k2"], listed["k3"]) == (
        "revoked",
        "maker_revoked",
        "maker_revoked",
    )
    # a key made by a key of the configuration lasts as asked, and the keys it makes with it
    k4 = await make(client, "k-coal", "k4", "enterprise", 3650)
    k5 = await make(client, k4["key"], "k5", "viewer", 3650)
    assert k5["expires_ms"] == k4["expires_ms"] == clock.now + 3650 * DAY
    # revoking a key made in the middle stops what it made, not its maker
    assert (await client.delete("/api/v1/api-keys/k4", headers=bearer("k-coal"))).status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(k5["key"]))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer("k-coal"))).status_code == 200


async def test_a_key_stops_when_its_maker_expires_or_leaves_the_configuration(tmp_path):
    """The ring works it out from the rows: a key made before makers were kept (maker NULL) is
    tied to the API key of its `created_by`, else to the configuration's key of that name."""
    clock = Clock()
    now = clock.now
    # the table as a hub of before this release made it, and its rows: no maker, no cap
    conn = sqlite3.connect(tmp_path / "registry.db")
    conn.execute(
        "CREATE TABLE api_keys (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, role TEXT"
        " NOT NULL, tenants TEXT NOT NULL, created_ms INTEGER NOT NULL, created_by TEXT NOT NULL,"
        " expires_ms INTEGER NOT NULL, revoked_ms INTEGER, revoked_by TEXT)"
    )
    for name, key, role, tenants, at, by, until in (
        ("old1", "o1", "admin", "[]", now, "root", now + DAY),
        ("old2", "o2", "viewer", '["north-coal"]', now + 1, "old1", now + 3650 * DAY),
        ("old3", "o3", "viewer", '["north-coal"]', now, "coal", now + 3650 * DAY),
    ):
        conn.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            (name, hash_key(key), role, tenants, at, by, until),
        )
    conn.commit()
    conn.close()
    rdb = RegistryDB(tmp_path / "registry.db")  # adds the maker column
    try:
        assert [r.maker for r in rdb.api_keys()] == [None, None, None]
        ring = KeyRing(CONFIG_KEYS, rdb, clock=clock)
        assert {k: ring.authenticate(k) is not None for k in ("o1", "o2", "o3")} == {
            "o1": True,
            "o2": True,
            "o3": True,
        }
        two = ring.authenticate("o2")
        assert two is not None and two.expires_ms == now + DAY  # its maker's expiry counts
        clock.now += DAY  # old1 expires: old2, made by it, with it
        assert ring.authenticate("o1") is None and ring.authenticate("o2") is None
        assert ring.authenticate("o3") is not None
        # the configuration's key "coal" removed: the key it made stops; back, it works again
        ring.set_config_keys([k for k in CONFIG_KEYS if k.name != "coal"])
        assert ring.authenticate("o3") is None and ring.until("old3") is None
        ring.set_config_keys(CONFIG_KEYS)
        assert ring.authenticate("o3") is not None
    finally:
        rdb.close()


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        # an enterprise makes keys of its own tenants, no wider and no stronger
        ("k-coal", {"name": "a", "role": "viewer", "tenants": ["north-coal"]}, 201),
        ("k-coal", {"name": "a", "role": "viewer", "tenants": ["acme-chem"]}, 403),
        ("k-coal", {"name": "a", "role": "viewer", "tenants": ["north-coal", "acme-chem"]}, 403),
        ("k-coal", {"name": "a", "role": "operator"}, 403),
        ("k-coal", {"name": "a", "role": "admin"}, 403),
        ("k-coal", {"name": "a", "role": "enterprise", "tenants": ["nowhere"]}, 403),
        # operators and viewers make none
        ("k-ops", {"name": "a", "role": "viewer", "tenants": ["north-coal"]}, 403),
        ("k-view", {"name": "a", "role": "viewer", "tenants": ["north-coal"]}, 403),
        # field errors
        ("k-root", {"name": "a", "role": "viewer"}, 422),
        ("k-root", {"name": "a", "role": "viewer", "tenants": ["nowhere"]}, 422),
        ("k-root", {"name": "a b", "role": "operator"}, 422),
        ("k-root", {"name": "a", "role": "operator", "expires_in_days": 0}, 422),
        ("k-root", {"name": "a", "role": "operator", "expires_in_days": 3651}, 422),
        ("k-root", {"name": "a", "role": "god"}, 422),
        ("k-root", {"name": "a", "role": "operator", "extra": 1}, 422),
        # a name of the configuration's
        ("k-root", {"name": "coal", "role": "operator"}, 409),
        ("k-root", {"name": "a", "role": "admin"}, 201),
    ],
)
async def test_who_makes_which_key(hub, who, body, status):
    client, _, _ = hub
    r = await client.post("/api/v1/api-keys", json=body, headers=bearer(who))
    assert r.status_code == status, r.text
    if status != 201:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "key" not in r.json()
    if status == 422:
        assert r.json()["errors"]


async def test_name_taken_twice_is_a_conflict(hub):
    client, _, _ = hub
    body = {"name": "dup", "role": "operator"}
    assert (
        await client.post("/api/v1/api-keys", json=body, headers=bearer("k-root"))
    ).status_code == 201
    r = await client.post("/api/v1/api-keys", json=body, headers=bearer("k-root"))
    assert r.status_code == 409


async def test_enterprise_sees_and_revokes_only_its_own_tenants_keys(hub):
    client, _, _ = hub
    for name, tenants in (("c1", ["north-coal"]), ("h1", ["acme-chem"])):
        r = await client.post(
            "/api/v1/api-keys",
            json={"name": name, "role": "viewer", "tenants": tenants},
            headers=bearer("k-root"),
        )
        assert r.status_code == 201
    seen = {
        k["name"] for k in (await client.get("/api/v1/api-keys", headers=bearer("k-coal"))).json()
    }
    assert "c1" in seen and "h1" not in seen
    assert "root" not in seen and "ops" not in seen  # keys that see more than it does
    assert {"coal", "view"} <= seen  # the configuration's keys of its tenant, listed
    # another tenant's key answers as if it did not exist
    assert (await client.delete("/api/v1/api-keys/h1", headers=bearer("k-coal"))).status_code == 404
    assert (
        await client.delete("/api/v1/api-keys/nope", headers=bearer("k-coal"))
    ).status_code == 404
    # the configuration's keys are removed in the configuration
    assert (
        await client.delete("/api/v1/api-keys/view", headers=bearer("k-coal"))
    ).status_code == 409
    assert (await client.get("/api/v1/api-keys", headers=bearer("k-ops"))).status_code == 403
    assert (await client.get("/api/v1/api-keys")).status_code == 401


@pytest.mark.parametrize(
    "name",
    [
        " ",  # whitespace only
        "王 工",  # a space inside: a log line or a shell would split it
        "王工\u3000",  # an ideographic space
        "ops\n",  # a control character: a forged log line
        "a\u202egnp",  # a bidi override: one name shown as another
        "王\u200b工",  # a zero-width space: 王工 twice, told apart by nothing visible
        "=cmd",  # a spreadsheet formula
        "-x",  # nor a leading dash (a formula; an option to a shell command)
        'li"ming',  # a quote: a CSV cell, a header
        "li,ming",
        "王工🙂",  # a symbol
        "ａｄｍｉｎ",  # full-width letters passing for `admin`
        "d\u0435mo-admin",  # a Cyrillic е passing for the centre's demo-admin (helper-163)
        "Иван",  # letters of other scripts look like Latin ones (а, е, о, р, с, х)
        "αdmin",  # a Greek alpha
        "demo\u4e00admin",  # 一 among Latin letters passing for a -
        "wang王工",  # Latin and Chinese in one name
        "li.ming\u0301",  # a combining mark
        "a" * 65,
        "",
    ],
)
async def test_a_key_name_refuses_what_would_break_a_log_a_header_or_a_csv(hub, name):
    client, _, _ = hub
    r = await client.post(
        "/api/v1/api-keys", json={"name": name, "role": "operator"}, headers=bearer("k-root")
    )
    assert r.status_code == 422, (name, r.text)
    assert r.json()["errors"][0]["loc"] == ["body", "name"], r.text


@pytest.mark.parametrize("name", ["system", "System", "SYSTEM", "hub", "file", "import", "系统"])
async def test_a_key_may_not_be_named_as_the_hub_acts_in_the_journal(hub, name):
    """`system` is the actor of the hub's clock in the journal (a shelve expired, a disposal
    overdue), `file` and `hub` of the configuration's revisions: an enterprise's key so named
    passed its comments off as the system's (security audit, helper-107)."""
    client, _, _ = hub
    body = {"name": name, "role": "viewer", "tenants": ["north-coal"]}
    r = await client.post("/api/v1/api-keys", json=body, headers=bearer("k-coal"))
    assert r.status_code == 422, (name, r.text)
    assert r.json()["errors"][0]["loc"] == ["body", "name"], r.text
    assert "acts under itself" in r.text
    # a name holding one is a name like any other (Chinese and Latin letters not mixed)
    body["name"] = f"{name}-wall" if name.isascii() else f"{name}-2"
    assert (
        await client.post("/api/v1/api-keys", json=body, headers=bearer("k-coal"))
    ).status_code == 201


async def test_a_taken_name_is_a_conflict_that_does_not_say_where(hub):
    """An enterprise asking for the name of another tenant's configuration key learnt that the
    configuration has one (security audit, helper-107): every taken name answers alike."""
    client, _, _ = hub
    made = {"name": "coal-wall", "role": "viewer", "tenants": ["north-coal"]}
    assert (
        await client.post("/api/v1/api-keys", json=made, headers=bearer("k-coal"))
    ).status_code == 201
    details = []
    # acme-chem's configuration key; one made here; one that looks like it
    for name in ("chem", "CHEM", "coal-wall", "C0AL_WALL"):
        body = {"name": name, "role": "viewer", "tenants": ["north-coal"]}
        r = await client.post("/api/v1/api-keys", json=body, headers=bearer("k-coal"))
        assert r.status_code == 409, (name, r.text)
        details.append(r.json()["detail"].replace(repr(name), "<name>"))
    assert (
        details == ["the key name <name> is taken, or one that looks like it: choose another"] * 4
    )
    assert "configuration" not in str(details)


async def test_a_key_named_in_chinese_acknowledges_and_the_journal_and_csv_say_its_name(tmp_path):
    """The journal names the key as the actor: a dispatcher's key named 王工 (names were ASCII
    only, so the journal could not say who in Chinese). ASCII names pass too."""
    from test_api_alarms import KEYS, Hub, auth

    hub = Hub(tmp_path)
    await hub.store.open()
    rdb = RegistryDB(tmp_path / "registry.db")
    ctx = AppContext(hub.reg, hub.store, hub.db, Metrics(), KeyRing(KEYS, rdb), desk=hub.desk)
    alarm_id = hub.raise_alarm()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
        ) as client:
            made = {}
            for name in ("王工", "li.ming-2", "张伟-2"):
                r = await client.post(
                    "/api/v1/api-keys",
                    json={"name": name, "role": "operator"},
                    headers=auth("admin"),
                )
                assert r.status_code == 201, r.text
                made[name] = r.json()["key"]
            wang = bearer(made["王工"])
            assert (await client.get("/api/v1/me", headers=wang)).json()["name"] == "王工"
            r = await client.post(
                f"/api/v1/alarms/{alarm_id}/acknowledge", json={"note": "已确认"}, headers=wang
            )
            assert r.status_code == 200, r.text
            last = r.json()["events"][-1]
            # (an operator key of every tenant: the supervising centre's acknowledgement)
            assert (last["kind"], last["actor"]) == ("centre_acknowledged", "王工")
            r = await client.get("/api/v1/alarms?format=csv", headers=wang)
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
            assert [row["centre_acknowledged_by"] for row in rows] == ["王工"]
            keys = (await client.get("/api/v1/api-keys", headers=auth("admin"))).json()
            assert {k["name"] for k in keys} >= set(made)
            # revoked by its name in the path, percent-encoded as a browser or curl sends it
            r = await client.delete("/api/v1/api-keys/%E7%8E%8B%E5%B7%A5", headers=auth("admin"))
            assert r.status_code == 204
            assert (await client.get("/api/v1/me", headers=wang)).status_code == 401
    finally:
        await hub.client.aclose()
        await hub.store.close()
        hub.notifier.close()
        hub.db.close()
        rdb.close()


async def test_a_key_of_every_tenant_is_listed_with_tenants_null_as_me_says(hub):
    """The list of keys showed `tenants: []` for a key of every tenant, where `/me` said null:
    a script reading one took it for a key of no tenant. Both say null; a key is made with null
    (or an empty list) for every tenant."""
    client, _, _ = hub
    made = {}
    for name, tenants in (("night-ops", None), ("day-ops", []), ("coal-ops", ["north-coal"])):
        body = {"name": name, "role": "operator", "tenants": tenants}
        r = await client.post("/api/v1/api-keys", json=body, headers=bearer("k-root"))
        assert r.status_code == 201, r.text
        made[name] = r.json()
    assert [made[n]["tenants"] for n in made] == [None, None, ["north-coal"]]
    listed = {
        k["name"]: k["tenants"]
        for k in (await client.get("/api/v1/api-keys", headers=bearer("k-root"))).json()
    }
    assert listed == {
        "root": None,
        "ops": None,
        "coal": ["north-coal"],
        "chem": ["acme-chem"],
        "view": ["north-coal"],
        "night-ops": None,
        "day-ops": None,
        "coal-ops": ["north-coal"],
    }
    for name in made:
        me = (await client.get("/api/v1/me", headers=bearer(made[name]["key"]))).json()
        assert me["tenants"] == listed[name], name
    r = await client.post(
        "/api/v1/api-keys", json={"name": "wall-2", "role": "viewer"}, headers=bearer("k-root")
    )
    assert r.status_code == 422 and "must name its tenants" in r.text


def test_the_registry_database_is_on_disk_before_a_change_is_said_saved(tmp_path):
    """Keys and configuration revisions said saved survive a power cut (synchronous FULL, as
    the state database; a power cut is not simulated here)."""
    rdb = RegistryDB(tmp_path / "registry.db")
    assert rdb._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    rdb.close()
