"""Every route of the OpenAPI document called with another enterprise's key: an object of another
tenant answers 404 (as if it did not exist), a list holds nothing of it, an admin's route answers
403. A new route without a case here fails the test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_alarms import COAL, KEYS, POLICY, SILENCE, SUBSCRIPTION, Hub, auth

from api.app import AppContext, create_app
from api.auth import KeyRing
from ingest.metrics import Metrics

from e2e_helpers import live_config

# the coal tenant's objects, asked for by the chemical enterprise (and the chemical tenant's
# tanker by the coal enterprise)
NOT_FOUND, FORBIDDEN, OPEN = 404, 403, 200


class Rig:
    def __init__(self, hub: Hub, client: httpx.AsyncClient, alarm_id: int) -> None:
        self.hub, self.client, self.alarm_id = hub, client, alarm_id


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    hub = Hub(tmp_path)
    await hub.store.open()
    rdb, admin = live_config(hub.reg, tmp_path, lambda: ctx)
    ctx = AppContext(
        hub.reg,
        hub.store,
        hub.db,
        Metrics(),
        KeyRing(KEYS, rdb),
        desk=hub.desk,
        notifier=hub.notifier,
        config=admin,
    )
    app = create_app(ctx)
    alarm_id = hub.raise_alarm()  # the coal face's methane
    from telemetry.notifyconfig import EscalationPolicySpec, SilenceSpec, SubscriptionSpec

    hub.notifier.put("subscription", COAL, SubscriptionSpec.model_validate(SUBSCRIPTION), "t")
    hub.notifier.put("escalation", COAL, EscalationPolicySpec.model_validate(POLICY), "t")
    hub.notifier.put("silence", COAL, SilenceSpec.model_validate(SILENCE), "t")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        r = await client.post(
            "/api/v1/api-keys",
            json={"name": "coal-wall", "role": "viewer", "tenants": [COAL]},
            headers=auth("admin"),
        )
        assert r.status_code == 201
        yield Rig(hub, client, alarm_id)
    await hub.store.close()
    hub.db.close()
    rdb.close()


def cases(alarm: int, row: int = 1) -> dict[tuple[str, str], tuple[str, Any, str, int]]:
    """(method, template) -> (url, body, who, expected status)."""
    a = f"/api/v1/alarms/{alarm}"
    c = COAL
    now = time.time_ns() // 1_000_000
    span = f"start={now - 86_400_000}&end={now + 3_600_000}"  # the last day: the alarm is in it
    return {
        ("get", "/api/v1/me"): ("/api/v1/me", None, "chem", OPEN),
        ("get", "/api/v1/sensors"): ("/api/v1/sensors", None, "chem", OPEN),
        ("get", "/api/v1/latest"): ("/api/v1/latest?sensor=ch4-t1", None, "chem", OPEN),
        ("get", "/api/v1/sensors/{sensor_id}"): ("/api/v1/sensors/ch4-t1", None, "chem", 404),
        ("get", "/api/v1/sensors/{sensor_id}/latest"): (
            "/api/v1/sensors/ch4-t1/latest",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/sensors/{sensor_id}/history"): (
            f"/api/v1/sensors/ch4-t1/history?{span}",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/vehicles"): ("/api/v1/vehicles", None, "coal", OPEN),
        ("get", "/api/v1/vehicles/{vehicle_id}/track"): (
            f"/api/v1/vehicles/tanker-01/track?{span}",
            None,
            "coal",
            NOT_FOUND,
        ),
        ("get", "/api/v1/alarms"): ("/api/v1/alarms", None, "chem", OPEN),
        ("get", "/api/v1/alarms/{alarm_id}"): (a, None, "chem", NOT_FOUND),
        ("post", "/api/v1/alarms/{alarm_id}/acknowledge"): (f"{a}/acknowledge", {}, "chem", 404),
        # many at once: answered per id, another tenant's as not found, and left alone
        ("post", "/api/v1/alarms/acknowledge"): (
            "/api/v1/alarms/acknowledge",
            {"ids": [alarm], "note": "n"},
            "chem",
            OPEN,
        ),
        ("post", "/api/v1/alarms/disposal"): (
            "/api/v1/alarms/disposal",
            {"ids": [alarm], "step": "verify", "note": "n"},
            "chem",
            OPEN,
        ),
        ("post", "/api/v1/alarms/{alarm_id}/shelve"): (
            f"{a}/shelve",
            {"reason": "r", "duration_s": 60},
            "chem-op",  # the centre's: an operator key of acme-chem
            NOT_FOUND,
        ),
        ("post", "/api/v1/alarms/{alarm_id}/unshelve"): (f"{a}/unshelve", {}, "chem", 404),
        ("post", "/api/v1/alarms/{alarm_id}/comment"): (f"{a}/comment", {"note": "n"}, "chem", 404),
        ("post", "/api/v1/alarms/{alarm_id}/disposal"): (
            f"{a}/disposal",
            {"step": "verify", "note": "n"},
            "chem",
            NOT_FOUND,
        ),
        ("post", "/api/v1/sensors/{sensor_id}/service"): (
            "/api/v1/sensors/ch4-t1/service",
            {"in_service": False, "reason": "r"},
            "chem-op",  # the centre's: an operator key of acme-chem
            NOT_FOUND,
        ),
        ("get", "/api/v1/subscriptions"): ("/api/v1/subscriptions", None, "chem", OPEN),
        ("put", "/api/v1/subscriptions"): (
            "/api/v1/subscriptions",
            {"tenant": c, "spec": SUBSCRIPTION},
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/subscriptions/{tenant}/{object_id}"): (
            f"/api/v1/subscriptions/{c}/control-room",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("delete", "/api/v1/subscriptions/{tenant}/{object_id}"): (
            f"/api/v1/subscriptions/{c}/control-room",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/escalation-policies"): (
            "/api/v1/escalation-policies",
            None,
            "chem",
            OPEN,
        ),
        ("put", "/api/v1/escalation-policies"): (
            "/api/v1/escalation-policies",
            {"tenant": c, "spec": POLICY},
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/escalation-policies/{tenant}/{object_id}"): (
            f"/api/v1/escalation-policies/{c}/night",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("delete", "/api/v1/escalation-policies/{tenant}/{object_id}"): (
            f"/api/v1/escalation-policies/{c}/night",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/silences"): ("/api/v1/silences", None, "chem", OPEN),
        ("put", "/api/v1/silences"): (
            "/api/v1/silences",
            {"tenant": c, "spec": SILENCE},
            "chem-op",  # the centre's: an operator key of acme-chem
            NOT_FOUND,
        ),
        ("get", "/api/v1/silences/{tenant}/{object_id}"): (
            f"/api/v1/silences/{c}/maint",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("delete", "/api/v1/silences/{tenant}/{object_id}"): (
            f"/api/v1/silences/{c}/maint",
            None,
            "chem-op",  # the centre's: an operator key of acme-chem
            NOT_FOUND,
        ),
        ("get", "/api/v1/notifications"): ("/api/v1/notifications", None, "chem", OPEN),
        ("post", "/api/v1/notifications/{row_id}/retry"): (
            f"/api/v1/notifications/{row}/retry",  # coal's dead notification
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/alarm-quality/rate"): (
            f"/api/v1/alarm-quality/rate?{span}",
            None,
            "chem",
            OPEN,
        ),
        ("get", "/api/v1/alarm-quality/chattering"): (
            f"/api/v1/alarm-quality/chattering?{span}",
            None,
            "chem",
            OPEN,
        ),
        ("get", "/api/v1/alarm-quality/standing"): (
            "/api/v1/alarm-quality/standing?standing_s=1",
            None,
            "chem",
            OPEN,
        ),
        ("get", "/api/v1/alarm-quality/bad-actors"): (
            f"/api/v1/alarm-quality/bad-actors?{span}",
            None,
            "chem",
            OPEN,
        ),
        ("get", "/api/v1/alarm-quality/handling"): (
            f"/api/v1/alarm-quality/handling?{span}",
            None,
            "chem",
            OPEN,
        ),
        # the shift handover: the chemical company's shift holds nothing of the coal face
        ("get", "/api/v1/handover"): ("/api/v1/handover?hours=12", None, "chem", OPEN),
        ("get", "/api/v1/sites"): ("/api/v1/sites", None, "chem", OPEN),
        # the packs are the regulations' numbers; a rule's count of sensors is of the key's own
        ("get", "/api/v1/rule-packs"): ("/api/v1/rule-packs", None, "chem", OPEN),
        ("get", "/api/v1/rule-packs/{name}"): (
            "/api/v1/rule-packs/coal-methane",
            None,
            "chem",
            OPEN,
        ),
        ("get", "/api/v1/sites/{tenant}/{site}"): (
            f"/api/v1/sites/{c}/face-1301",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("get", "/api/v1/api-keys"): ("/api/v1/api-keys", None, "chem", OPEN),
        ("post", "/api/v1/api-keys"): (
            "/api/v1/api-keys",
            {"name": "x", "role": "viewer", "tenants": [c]},
            "chem",
            FORBIDDEN,
        ),
        ("delete", "/api/v1/api-keys/{name}"): ("/api/v1/api-keys/coal-wall", None, "chem", 404),
        ("get", "/api/v1/registry/{path}"): (
            f"/api/v1/registry/tenants/{c}/sites",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("post", "/api/v1/registry/{path}"): (
            f"/api/v1/registry/tenants/{c}/sites",
            {"id": "x"},
            "chem",
            FORBIDDEN,
        ),
        ("put", "/api/v1/registry/{path}"): (
            f"/api/v1/registry/tenants/{c}",
            {"id": c},
            "chem",
            FORBIDDEN,
        ),
        ("delete", "/api/v1/registry/{path}"): (
            f"/api/v1/registry/tenants/{c}",
            None,
            "chem",
            FORBIDDEN,
        ),
        ("get", "/api/v1/geofences"): ("/api/v1/geofences", None, "chem", OPEN),
        ("get", "/api/v1/config"): ("/api/v1/config", None, "chem", FORBIDDEN),
        ("put", "/api/v1/config"): ("/api/v1/config", {"tenants": []}, "chem", FORBIDDEN),
        ("get", "/api/v1/config/revisions"): ("/api/v1/config/revisions", None, "chem", 403),
        ("post", "/api/v1/config/revisions/{rev}/restore"): (
            "/api/v1/config/revisions/1/restore",
            None,
            "chem",
            FORBIDDEN,
        ),
        ("get", "/api/v1/dead-letters"): ("/api/v1/dead-letters", None, "chem", FORBIDDEN),
        ("get", "/metrics"): ("/metrics", None, "chem", FORBIDDEN),
        ("get", "/healthz"): ("/healthz", None, "chem", OPEN),
        ("get", "/readyz"): ("/readyz", None, "chem", OPEN),
    }


# the live stream is tenant-scoped per event; tests/test_stream.py shows another tenant's events
# never reach a subscriber
ELSEWHERE = {("get", "/api/v1/stream")}


async def test_every_route_refuses_another_enterprise(rig: Rig) -> None:
    rig.hub.notifier.route()  # coal's notification of its alarm, given up on
    ((row, *_),) = rig.hub.notifier.store.outbox([COAL])
    rig.hub.notifier.store.settle([(row, "dead", 1, "HTTP 410 Gone", None)])
    table = cases(rig.alarm_id, row)
    spec = rig.client.get("/openapi.json")
    paths = (await spec).json()["paths"]
    routes = {(m, p) for p, ops in paths.items() for m in ops}
    assert routes == set(table) | ELSEWHERE, "a route without a case here"
    before = await rig.client.get(f"/api/v1/alarms/{rig.alarm_id}", headers=auth("op"))
    for (method, _), (url, body, who, want) in table.items():
        kw: dict[str, Any] = {} if body is None else {"json": body}
        r = await rig.client.request(method.upper(), url, headers=auth(who), **kw)
        assert r.status_code == want, (method, url, who, r.status_code, r.text)
        if url in ("/api/v1/alarms/acknowledge", "/api/v1/alarms/disposal"):
            assert r.json()["counts"]["not_found"] == 1, r.text
        if want == OPEN:
            # a list answers, with nothing of the other tenant in it
            other = "acme-chem" if who == "coal" else COAL
            assert other not in r.text, (url, r.text[:300])
            assert "tanker-01" not in r.text or who == "chem", url
            assert "ch4-t1" not in r.text or who == "coal", url
    # and nothing changed for the tenant that owns it
    after = await rig.client.get(f"/api/v1/alarms/{rig.alarm_id}", headers=auth("op"))
    assert after.json() == before.json()
    assert [s.id for _, s in rig.hub.notifier.objects("subscription", [COAL])] == ["control-room"]
    assert [r[9] for r in rig.hub.notifier.store.outbox([COAL])] == ["dead"]
    assert rig.hub.published == []


async def test_me_tells_the_key_its_role_tenants_and_actions_never_a_secret(rig: Rig) -> None:
    """The dashboard shows only the buttons the key's role may use: it asks `/api/v1/me`."""
    answers = {}
    for who in ("op", "coal", "viewer"):
        r = await rig.client.get("/api/v1/me", headers=auth(who))
        assert r.status_code == 200, r.text
        answers[who] = r.json()
    assert answers["op"] == {
        "name": "op",
        "role": "operator",
        "tenants": None,
        "expires_ms": None,
        "alarm_actions": ["acknowledge", "shelve", "unshelve", "comment", "disposal"],
    }
    # an enterprise may not shelve (the centre's); a viewer may do nothing
    assert answers["coal"]["tenants"] == [COAL]
    assert answers["coal"]["alarm_actions"] == ["acknowledge", "unshelve", "comment", "disposal"]
    assert (answers["viewer"]["role"], answers["viewer"]["alarm_actions"]) == ("viewer", [])
    made = await rig.client.post(
        "/api/v1/api-keys",
        json={"name": "coal-wall-2", "role": "viewer", "tenants": [COAL]},
        headers=auth("admin"),
    )
    key = made.json()["key"]
    r = await rig.client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    body = r.json()
    assert body["name"] == "coal-wall-2" and body["expires_ms"] == made.json()["expires_ms"]
    assert key not in r.text and "sha256" not in r.text
    assert (await rig.client.get("/api/v1/me")).status_code == 401


async def test_a_site_filter_naming_another_tenants_site_is_404_on_every_list(rig: Rig) -> None:
    """`?site=` of a site the key does not see (another tenant's, or none of that name) is 404
    on every list that takes it, as `?tenant=` is: never 200 with an empty list that reads as
    'nothing there' (and tells nothing of the other tenant either way)."""
    now = time.time_ns() // 1_000_000
    span = f"start={now - 86_400_000}&end={now + 3_600_000}"
    lists = (
        "/api/v1/sensors",
        "/api/v1/latest",
        "/api/v1/alarms",
        "/api/v1/alarm-quality/rate",
        "/api/v1/handover",
    )
    for path in lists:
        sep = "&" if "?" in path else "?"
        extra = f"&{span}" if "alarm-quality" in path else ""
        for who, site, want in (
            ("coal", "face-1301", 200),  # its own site
            ("chem", "face-1301", 404),  # the coal tenant's
            ("coal", "face-1310", 404),  # none of that name
            ("op", "face-1301", 200),  # the centre sees every site
        ):
            r = await rig.client.get(f"{path}{sep}site={site}{extra}", headers=auth(who))
            assert r.status_code == want, (path, who, site, r.status_code, r.text)
            if want == 404:
                assert f"site {site!r}" in r.json()["detail"], r.text
    # the coal site's sensors and its latest readings are there for the coal key
    r = await rig.client.get("/api/v1/sensors?site=face-1301", headers=auth("coal"))
    assert "ch4-t1" in {s["id"] for s in r.json()}


async def test_every_write_route_checks_the_key_before_the_body(rig: Rig) -> None:
    """Every write of the table (so every write route: the table covers them all) answers a
    viewer 403 and no key 401 before its body is read: a body that is not even JSON was 422
    first (security audit, helper-107: the docs said 403 before the body is looked at)."""
    writes = [
        (m, url)
        for (m, _), (url, *_) in cases(rig.alarm_id).items()
        if m in ("post", "put", "delete")
    ]
    assert len(writes) >= 15, writes
    for method, url in writes:
        for who, want in (("viewer", 403), (None, 401)):
            headers = {"Content-Type": "application/json", **(auth(who) if who else {})}
            r = await rig.client.request(method.upper(), url, content=b"{bad", headers=headers)
            assert r.status_code == want, (method, url, who, r.status_code, r.text)
    # a key that may write still gets its body's error
    r = await rig.client.post(
        "/api/v1/alarms/acknowledge",
        content=b"{bad",
        headers={"Content-Type": "application/json", **auth("coal")},
    )
    assert r.status_code == 422, r.text
