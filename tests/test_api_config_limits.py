"""A tenant's limits on subscriptions, escalation policies and silences hold on a configuration
changed through the API (`PUT /api/v1/config`, a registry `PUT` of a tenant, a restore) with the
objects made through the API counted too, as `/subscriptions` counts them: an admin split 60
subscriptions as 30 in the configuration and 30 through the API (a security review, helper-172).
Over a real socket (uvicorn), against the hub's notifier and live configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_alarms import COAL, KEYS, Hub, auth
from test_api_error_headers import served

from api.app import AppContext, create_app
from api.auth import KeyRing
from api.configadmin import ConfigAdmin
from api.registrydb import RegistryDB
from hazardhub.settings import load_profiles
from ingest.metrics import Metrics
from telemetry.config import HubConfig
from telemetry.notifyconfig import TENANT_LIMITS
from telemetry.registry import Registry, build_registry

ROOT = Path(__file__).resolve().parent.parent
SUBS = TENANT_LIMITS["subscription"]
POLICIES = TENANT_LIMITS["escalation"]


@dataclass
class Rig:
    api: httpx.AsyncClient
    hub: Hub

    async def config(self) -> dict[str, Any]:
        r = await self.api.get("/api/v1/config?format=json", headers=auth("admin"))
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    async def put_config(self, doc: dict[str, Any]) -> httpx.Response:
        return await self.api.put("/api/v1/config", json=doc, headers=auth("admin"))

    async def put_object(self, path: str, spec: dict[str, Any], who: str) -> httpx.Response:
        body = {"tenant": COAL, "spec": spec}
        return await self.api.put(f"/api/v1/{path}", json=body, headers=auth(who))

    def held(self, kind: str) -> int:
        return len(self.hub.notifier.objects(kind, [COAL]))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    hub = Hub(tmp_path)
    await hub.store.open()
    profiles, packs = load_profiles(ROOT / "profiles")

    def build(config: HubConfig) -> Registry:
        return build_registry(config, profiles, packs, "test")

    async def switch(new: Registry, rev: int) -> None:  # as the hub switches (`Hub.switch`)
        ctx.registry = new
        hub.notifier.set_registry(new)

    rdb = RegistryDB(tmp_path / "registry.db")
    admin = ConfigAdmin(rdb, build, switch)
    admin.startup(hub.reg, "test")
    ctx = AppContext(
        hub.reg, hub.store, hub.db, Metrics(), KeyRing(KEYS, rdb), notifier=hub.notifier,
        config=admin,
    )  # fmt: skip
    async with served(create_app(ctx)) as api:
        yield Rig(api, hub)
    await hub.store.close()
    hub.notifier.close()
    hub.db.close()
    rdb.close()


def _mail(name: str) -> dict[str, Any]:
    return {"id": name, "channel": {"type": "email", "to": [f"{name}@x.example"]}}


def _policy(name: str) -> dict[str, Any]:
    step = {"after_s": 60, "channel": {"type": "email", "to": ["duty@x.example"]}}
    return {"id": name, "steps": [step]}


def _coal(doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return next((i, t) for i, t in enumerate(doc["tenants"]) if t["id"] == COAL)


async def test_an_import_counts_the_subscriptions_made_through_the_api(rig: Rig) -> None:
    for i in range(30):  # the enterprise's own, through the API
        r = await rig.put_object("subscriptions", _mail(f"api{i}"), "coal")
        assert r.status_code == 200, r.text
    doc = await rig.config()
    i, coal = _coal(doc)
    coal["subscriptions"] = [_mail(f"file{k}") for k in range(SUBS - 30 + 1)]
    r = await rig.put_config(doc)
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["loc"] == ["body", "tenants", i, "subscriptions"], error
    msg = error["msg"]
    assert f"'{COAL}'" in msg and f"at most {SUBS} subscriptions" in msg, msg
    assert "21 in the configuration and 30 more made through the API" in msg, msg
    assert f"GET /api/v1/subscriptions?tenant={COAL}" in msg, msg
    assert rig.held("subscription") == 30  # nothing taken
    # a dry run says so too
    r = await rig.api.put("/api/v1/config?dry_run=true", json=doc, headers=auth("admin"))
    assert r.status_code == 422, r.text
    # the same through the registry's tenant, located from the tenant
    r = await rig.api.put(f"/api/v1/registry/tenants/{COAL}", json=coal, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "subscriptions"], r.text
    # up to the limit, together: taken
    coal["subscriptions"] = coal["subscriptions"][:-1]
    r = await rig.put_config(doc)
    assert r.status_code == 200, r.text
    assert rig.held("subscription") == SUBS
    # then one more through the API is refused (it counted them together already)
    r = await rig.put_object("subscriptions", _mail("one-more"), "admin")
    assert r.status_code == 422, r.text
    # a configuration object of the id of one made through the API replaces it: counted once
    doc = await rig.config()
    _, coal = _coal(doc)
    coal["subscriptions"].append(_mail("api0"))
    r = await rig.put_config(doc)
    assert r.status_code == 200, r.text
    assert rig.held("subscription") == SUBS
    # and a change elsewhere of a tenant at its limit goes through
    coal["name"] = "北方煤业集团"
    r = await rig.put_config(doc)
    assert r.status_code == 200, r.text


async def test_a_restore_counts_the_escalation_policies_made_through_the_api_since(
    rig: Rig,
) -> None:
    doc = await rig.config()
    _, coal = _coal(doc)
    coal["escalation_policies"] = [_policy(f"file{k}") for k in range(10)]
    r = await rig.put_config(doc)
    assert r.status_code == 200, r.text
    ten = r.json()["rev"]
    coal["escalation_policies"] = []
    r = await rig.put_config(doc)
    assert r.status_code == 200, r.text
    for k in range(POLICIES - 10 + 1):  # room for them now
        r = await rig.put_object("escalation-policies", _policy(f"api{k}"), "coal")
        assert r.status_code == 200, r.text
    r = await rig.api.post(f"/api/v1/config/revisions/{ten}/restore", headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert f"at most {POLICIES} escalation policies" in r.text, r.text
    assert "10 in the configuration and 11 more made through the API" in r.text, r.text
    assert rig.held("escalation") == POLICIES - 10 + 1
    # one of the API's deleted: the restore fits
    r = await rig.api.delete(f"/api/v1/escalation-policies/{COAL}/api0", headers=auth("coal"))
    assert r.status_code == 204, r.text
    r = await rig.api.post(f"/api/v1/config/revisions/{ten}/restore", headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert rig.held("escalation") == POLICIES
