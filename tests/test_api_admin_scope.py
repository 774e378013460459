"""An admin key limited to some tenants: it manages only keys of those tenants and no stronger than
itself (never a key of every tenant), changes only the registry objects under its tenants, and
neither reads nor changes what spans tenants (the whole configuration, its revisions, the tenants
themselves, rule packs, the fleet settings). Over HTTP against the app, with a live
configuration as the hub makes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_api_alarms import CHEM, COAL, KEYS, _key, auth
from test_api_config_yaml import live_client

SCOPE_KEYS = [*KEYS, _key("chem-admin", "admin", CHEM)]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with live_client(tmp_path, SCOPE_KEYS) as c:
        yield c


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "role": "admin"}, 403),  # a key of every tenant
        ({"name": "x", "role": "operator"}, 403),
        ({"name": "x", "role": "admin", "tenants": [COAL]}, 403),
        ({"name": "x", "role": "admin", "tenants": [CHEM, COAL]}, 403),
        ({"name": "x", "role": "viewer", "tenants": [COAL]}, 403),
        ({"name": "x", "role": "admin", "tenants": [CHEM]}, 201),
        ({"name": "x", "role": "operator", "tenants": [CHEM]}, 201),
        ({"name": "x", "role": "enterprise", "tenants": [CHEM]}, 201),
        ({"name": "x", "role": "viewer", "tenants": [CHEM]}, 201),
    ],
)
async def test_limited_admin_makes_keys_only_within_its_tenants(
    client: httpx.AsyncClient, body: dict[str, object], status: int
) -> None:
    r = await client.post("/api/v1/api-keys", json=body, headers=auth("chem-admin"))
    assert r.status_code == status, r.text
    if status == 201:
        assert r.json()["tenants"] == [CHEM]
        made = {"Authorization": f"Bearer {r.json()['key']}"}
        sensors = (await client.get("/api/v1/sensors", headers=made)).json()
        assert [s for s in sensors if s["tenant"] == COAL] == []


async def test_limited_admin_lists_and_revokes_only_keys_within_its_tenants(
    client: httpx.AsyncClient,
) -> None:
    for name, role, tenants in (("coal-wall", "viewer", [COAL]), ("ops2", "operator", [])):
        body = {"name": name, "role": role, "tenants": tenants}
        r = await client.post("/api/v1/api-keys", json=body, headers=auth("admin"))
        assert r.status_code == 201, r.text
    listed = await client.get("/api/v1/api-keys", headers=auth("chem-admin"))
    assert listed.status_code == 200
    assert {k["name"] for k in listed.json()} == {"chem", "chem-op", "chem-admin"}
    # another tenant's key, and a key of every tenant, answer as if they did not exist
    for name in ("coal-wall", "ops2", "admin", "coal"):
        r = await client.delete(f"/api/v1/api-keys/{name}", headers=auth("chem-admin"))
        assert r.status_code == 404, (name, r.text)
    everyone = (await client.get("/api/v1/api-keys", headers=auth("admin"))).json()
    assert {k["name"]: k["state"] for k in everyone if k["source"] == "api"} == {
        "coal-wall": "active",
        "ops2": "active",
    }
    # the admin of every tenant still manages all of them
    assert (await client.delete("/api/v1/api-keys/ops2", headers=auth("admin"))).status_code == 204


SITE = {"id": "depot", "kind": "chemical"}
PACK = {"name": "mine", "rules": {}}


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/api/v1/config", None),
        ("GET", "/api/v1/config?format=json", None),
        ("PUT", "/api/v1/config?dry_run=true", {"tenants": [{"id": CHEM}]}),
        ("GET", "/api/v1/config/revisions", None),
        ("POST", "/api/v1/config/revisions/1/restore?dry_run=true", None),
        ("POST", "/api/v1/registry/tenants?dry_run=true", {"id": "new-co"}),
        ("DELETE", f"/api/v1/registry/tenants/{CHEM}?dry_run=true", None),
        ("POST", "/api/v1/registry/rule-packs?dry_run=true", PACK),
        ("PUT", "/api/v1/registry/fleet?dry_run=true", {}),
        ("POST", "/api/v1/registry/geofences?dry_run=true", {"id": "g"}),
    ],
)
async def test_what_spans_tenants_needs_an_admin_of_every_tenant(
    client: httpx.AsyncClient, method: str, url: str, body: object
) -> None:
    kw = {} if body is None else {"json": body}
    r = await client.request(method, url, headers=auth("chem-admin"), **kw)
    assert r.status_code == 403, r.text
    assert "every tenant" in r.json()["detail"]
    assert COAL not in r.text
    whole = await client.request(method, url, headers=auth("admin"), **kw)
    assert whole.status_code in (200, 201, 204, 422), whole.text


async def test_limited_admin_changes_the_registry_of_its_own_tenants_only(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        f"/api/v1/registry/tenants/{CHEM}/sites", json=SITE, headers=auth("chem-admin")
    )
    assert r.status_code == 201, r.text
    sites = await client.get(f"/api/v1/registry/tenants/{CHEM}/sites", headers=auth("admin"))
    assert [s["id"] for s in sites.json()] == ["depot"]
    r = await client.put(
        f"/api/v1/registry/tenants/{CHEM}",
        json={"id": CHEM, "name": "Acme", "sites": [SITE]},
        headers=auth("chem-admin"),
    )
    assert r.status_code == 200, r.text
    r = await client.delete(
        f"/api/v1/registry/tenants/{CHEM}/sites/depot", headers=auth("chem-admin")
    )
    assert r.status_code == 204, r.text
    # another tenant's objects answer as if they did not exist
    for method, url, body in (
        ("POST", f"/api/v1/registry/tenants/{COAL}/sites", SITE),
        ("PUT", f"/api/v1/registry/tenants/{COAL}", {"id": COAL}),
        ("DELETE", f"/api/v1/registry/tenants/{COAL}/sites/face-1301", None),
        ("GET", f"/api/v1/registry/tenants/{COAL}", None),
    ):
        kw = {} if body is None else {"json": body}
        r = await client.request(method, url, headers=auth("chem-admin"), **kw)
        assert r.status_code == 404, (method, url, r.text)
    coal = await client.get(f"/api/v1/registry/tenants/{COAL}/sites", headers=auth("admin"))
    assert [s["id"] for s in coal.json()] == ["face-1301"]


async def test_a_change_refused_for_another_tenants_part_does_not_say_where(tmp_path: Path) -> None:
    """A limited admin adding a sensor whose id another tenant uses learnt where that tenant has
    it: the error was located in the other tenant's part of the configuration (security audit,
    helper-107). It is the change's error now, with nothing of the other part."""
    keys = [*SCOPE_KEYS, _key("coal-admin", "admin", COAL)]
    device = {
        "id": "kj-sub-9",
        "profile": "coal-substation",
        "modbus": {"host": "10.0.4.29", "port": 502, "unit": 9},
        "sensors": [
            {
                "id": "tanker-01.speed",
                "point": "ch4_t0",
                "kind": "methane",
                "rule": "coal-methane.face-t1",
            }
        ],
    }
    url = f"/api/v1/registry/tenants/{COAL}/sites/face-1301/devices?dry_run=true"
    async with live_client(tmp_path, keys) as client:
        whole = await client.post(url, json=device, headers=auth("admin"))
        assert whole.status_code == 422, whole.text
        assert ["body", "tenants", 1] in [e["loc"][:3] for e in whole.json()["errors"]]
        r = await client.post(url, json=device, headers=auth("coal-admin"))
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["loc"] for e in errors] == [["body"]], errors
    assert "outside this key's tenants" in errors[0]["msg"]
    assert "tenants" not in str([e["loc"] for e in errors]) and "vehicles" not in r.text


async def test_a_sensor_id_another_tenant_uses_is_only_said_to_be_taken(tmp_path: Path) -> None:
    """A limited admin adding a sensor whose id another enterprise uses, the error in its own
    part of the configuration, was told "sensor id 'ch4-t1' is used twice" at
    `tenants.1.sites.0.devices.0.sensors.1`: that another enterprise has it, and where it sits
    in the whole configuration (helper-120). It is told the id is taken, at the sensor sent."""
    device = {
        "id": "d9",
        "profile": "coal-substation",
        "modbus": {"host": "10.0.4.29", "port": 502, "unit": 9},
        "sensors": [{"id": "own-1", "point": "ch4_t1", "kind": "methane"}],
    }
    sensors = f"/api/v1/registry/tenants/{CHEM}/sites/depot/devices/d9/sensors"
    async with live_client(tmp_path, SCOPE_KEYS) as client:
        site = {**SITE, "devices": [device]}
        r = await client.post(
            f"/api/v1/registry/tenants/{CHEM}/sites", json=site, headers=auth("admin")
        )
        assert r.status_code == 201, r.text
        coal_id = {"id": "ch4-t1", "point": "ch4_t0", "kind": "methane"}  # north-coal's id
        own_id = {"id": "own-1", "point": "ch4_t0", "kind": "methane"}
        for dry in ("true", "false"):
            r = await client.post(
                f"{sensors}?dry_run={dry}", json=coal_id, headers=auth("chem-admin")
            )
            assert r.status_code == 422, r.text
            assert r.json()["errors"] == [
                {
                    "loc": ["body"],
                    "msg": "sensor id 'ch4-t1' is taken: sensor ids are unique across the hub,"
                    " every enterprise's; choose another",
                    "type": "config_error",
                }
            ], r.text
            assert "twice" not in r.text and "tenants" not in r.json()["detail"]
        # an id its own tenant uses twice is said so; an admin of every tenant is told all
        other = {**device, "id": "d10", "sensors": [own_id]}
        devices = f"/api/v1/registry/tenants/{CHEM}/sites/depot/devices?dry_run=true"
        r = await client.post(devices, json=other, headers=auth("chem-admin"))
        assert r.json()["errors"] == [
            {
                "loc": ["body", "sensors", 0],
                "msg": "sensor id 'own-1' is used twice",
                "type": "config_error",
            }
        ], r.text
        r = await client.post(f"{sensors}?dry_run=true", json=coal_id, headers=auth("admin"))
        assert r.json()["errors"] == [
            {"loc": ["body"], "msg": "sensor id 'ch4-t1' is used twice", "type": "config_error"}
        ], r.text


async def test_a_plate_or_terminal_of_another_tenants_vehicle_is_only_said_to_be_taken(
    tmp_path: Path,
) -> None:
    """A limited admin's dry run of a vehicle with another enterprise's plate or SIM was told
    `plate 晋A12345 is also north-coal/coal-truck-7's`: whose vehicle has a plate, or a SIM,
    looked up one by one (helper-220). It is told they are taken by another enterprise's
    vehicle; the centre's admin (a key of every tenant) is still told whose."""
    truck = {"id": "coal-truck-7", "plate": "晋A·12345", "terminal": "013800138000"}
    vehicles = f"/api/v1/registry/tenants/{CHEM}/vehicles?dry_run=true"
    plate = {"id": "probe", "plate": "晋A12345", "class": "hazmat"}
    sim = {"id": "probe", "plate": "苏B00001", "terminal": "13800138000", "class": "hazmat"}
    async with live_client(tmp_path, SCOPE_KEYS) as client:
        r = await client.post(
            f"/api/v1/registry/tenants/{COAL}/vehicles",
            json={**truck, "class": "hazmat"},
            headers=auth("admin"),
        )
        assert r.status_code == 201, r.text
        for body, what in ((plate, "plate 晋A12345"), (sim, "terminal 13800138000")):
            r = await client.post(vehicles, json=body, headers=auth("chem-admin"))
            assert r.status_code == 422, r.text
            (error,) = r.json()["errors"]
            assert error["msg"].startswith(f"{what} is taken by another enterprise's vehicle")
            assert COAL not in r.text and "coal-truck-7" not in r.text, r.text
            assert "tenants" not in str(error["loc"]), r.text
            r = await client.post(vehicles, json=body, headers=auth("admin"))
            assert r.status_code == 422 and "is also north-coal/coal-truck-7's" in r.text, r.text
        # a plate of its own tenant's vehicle is said as before: whose it is
        own = {"id": "own-1", "plate": "苏C00002", "class": "hazmat"}
        url = f"/api/v1/registry/tenants/{CHEM}/vehicles"
        assert (await client.post(url, json=own, headers=auth("chem-admin"))).status_code == 201
        r = await client.post(vehicles, json={**own, "id": "own-2"}, headers=auth("chem-admin"))
        assert r.status_code == 422 and f"is also {CHEM}/own-1's" in r.text, r.text
