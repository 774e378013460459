"""The dead letters over HTTP: the MQTT messages the hub refused, newest first, with the reason,
the size and the start of the payload (base64), for admins of every tenant only."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing, hash_key
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore
from telemetry.config import ApiKeySpec

from e2e_helpers import mine_registry

KEYS = [
    ApiKeySpec(name="root", sha256=hash_key("k-root"), role="admin"),
    ApiKeySpec(
        name="chem-admin", sha256=hash_key("k-chem-admin"), role="admin", tenants=("acme-chem",)
    ),
    ApiKeySpec(name="ops", sha256=hash_key("k-ops"), role="operator"),
    ApiKeySpec(name="coal", sha256=hash_key("k-coal"), role="enterprise", tenants=("north-coal",)),
]
TOPIC = "hazardhub/v1/north-coal/face-1301/kj-sub-9/telemetry"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, StateDB]]:
    reg = mine_registry(1502, 1.0)
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    db = StateDB(tmp_path / "state.db", max_dead_letter_bytes=300)
    app = create_app(AppContext(reg, store, db, Metrics(), KeyRing(KEYS)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        yield client, db
    await store.close()
    db.close()


async def test_dead_letters_newest_first_with_reason_size_and_payload(hub) -> None:
    client, db = hub
    db.add_dead_letter(1000, "telemetry", TOPIC, "decode_error: bad magic", b"\x00\xffHH")
    db.add_dead_letter(2000, "telemetry", TOPIC, "unknown_device: kj-sub-9", bytes(range(200)))
    db.add_dead_letter(3000, "position", "hazardhub/v1/x/vehicles/v/position", "json", b"{" * 1000)
    r = await client.get("/api/v1/dead-letters", headers=auth("k-root"))
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [d["at"] for d in rows] == [3000, 2000, 1000]
    big, mid, small = rows
    assert small == {
        "id": small["id"],
        "at": 1000,
        "source": "telemetry",
        "topic": TOPIC,
        "reason": "decode_error: bad magic",
        "size": 4,
        "payload_base64": base64.b64encode(b"\x00\xffHH").decode(),
        "truncated": False,
        "repeats": 0,
        "last_at": None,
    }
    # the first 256 bytes by default; the database kept 300 of the 1000
    assert base64.b64decode(mid["payload_base64"]) == bytes(range(200))
    assert not mid["truncated"]
    assert base64.b64decode(big["payload_base64"]) == b"{" * 256
    assert big["size"] == 1000 and big["truncated"]
    more = await client.get("/api/v1/dead-letters?payload_bytes=65536", headers=auth("k-root"))
    assert base64.b64decode(more.json()[0]["payload_base64"]) == b"{" * 300
    # since and limit
    r = await client.get("/api/v1/dead-letters?since=2000", headers=auth("k-root"))
    assert [d["at"] for d in r.json()] == [3000, 2000]
    r = await client.get("/api/v1/dead-letters?limit=1", headers=auth("k-root"))
    assert [d["at"] for d in r.json()] == [3000]
    r = await client.get("/api/v1/dead-letters?limit=0", headers=auth("k-root"))
    assert r.status_code == 422
    # the same again within the hour: counted on the one kept, found by `since` at its last
    # repeat and listed by it, however many letters came between (helper-104: `since` was
    # applied after the limit, to the letters newest by id)
    for k in range(5):
        db.add_dead_letter(4000 + k, "position", f"hazardhub/v1/x/vehicles/v{k}/position", "j", b"")
    db.add_dead_letter(5000, "telemetry", TOPIC, "decode_error: bad magic", b"\x00")
    r = await client.get("/api/v1/dead-letters?since=5000&limit=1", headers=auth("k-root"))
    assert [(d["at"], d["repeats"], d["last_at"]) for d in r.json()] == [(1000, 1, 5000)]
    r = await client.get("/api/v1/dead-letters?limit=2", headers=auth("k-root"))
    assert [(d["at"], d["repeats"]) for d in r.json()] == [(1000, 1), (4004, 0)]


@pytest.mark.parametrize(
    ("key", "status"), [("k-chem-admin", 403), ("k-ops", 403), ("k-coal", 403), ("nope", 401)]
)
async def test_dead_letters_are_for_admins_of_every_tenant(hub, key: str, status: int) -> None:
    client, db = hub
    db.add_dead_letter(1000, "telemetry", TOPIC, "decode_error: bad magic", b"secret-ish")
    r = await client.get("/api/v1/dead-letters", headers=auth(key))
    assert r.status_code == status, r.text
    assert TOPIC not in r.text
