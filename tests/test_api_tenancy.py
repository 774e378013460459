"""Every route of the OpenAPI document called with another enterprise's key: an object of another
tenant answers 404 (as if it did not exist), a list holds nothing of it, an admin's route answers
403. A new route without a case here fails the test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_api_alarms import COAL, KEYS, POLICY, SILENCE, SUBSCRIPTION, Hub, auth

from alerts.bypasses import insert_approval
from alerts.supervisionanswers import Supervision, record_supervision
from api.app import AppContext, create_app
from api.auth import KeyRing
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch

from e2e_helpers import live_config

# the coal tenant's objects, asked for by the chemical enterprise (and the chemical tenant's
# tanker by the coal enterprise)
NOT_FOUND, FORBIDDEN, OPEN = 404, 403, 200


class Rig:
    def __init__(
        self, hub: Hub, client: httpx.AsyncClient, alarm_id: int, supervision: int = 0
    ) -> None:
        self.hub, self.client, self.alarm_id = hub, client, alarm_id
        self.supervision = supervision  # the centre's 督办 of the chemical tenant's tanker


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
    # a weekly window away from today (China time): Wednesday's 02:00-03:00 silenced the coal
    # notification the test needs when the suite ran then
    away = (datetime.now(timezone(timedelta(hours=8))).weekday() + 3) % 7
    silence = {**SILENCE, "recurrence": {**SILENCE["recurrence"], "weekdays": [away]}}
    hub.notifier.put("silence", COAL, SilenceSpec.model_validate(silence), "t")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        r = await client.post(
            "/api/v1/api-keys",
            json={"name": "coal-wall", "role": "viewer", "tenants": [COAL]},
            headers=auth("admin"),
        )
        assert r.status_code == 201
        # a hidden-danger item of the coal face (tests/test_hazards.py)
        r = await client.post(
            "/api/v1/hazards",
            json={"site": "face-1301", "description": "局部通风机单电源"},
            headers=auth("coal"),
        )
        assert r.status_code == 201 and r.json()["id"] == 1, r.text
        # a bypass approval of the coal tenant's (tests/test_bypass_approvals.py): its mine has
        # no interlock, so it is recorded below the API
        with hub.db.transaction() as con:
            at = int(time.time() * 1000)
            insert_approval(
                con, COAL, "ch4-t1", "x", "x", "x", None, at, at + 3_600_000, "coal", at
            )
        # a 督办 of the chemical tenant's tanker (tests/test_supervision_state.py): recorded as
        # the route records it
        tanker = hub.raise_alarm("tanker-01.speed", 90)
        ev = hub.desk.act(tanker, "comment", actor="op", now=at, note="督办 (一般, 截止 x)")
        record_supervision(
            hub.db,
            Supervision(
                ev.event_id, tanker, "acme-chem", "tanker-01", "苏A·D1234", at + 3_600_000, at,
                "op",
            ),
        )  # fmt: skip
        yield Rig(hub, client, alarm_id, ev.event_id)
    await hub.store.close()
    hub.db.close()
    rdb.close()


def cases(
    alarm: int, row: int = 1, supervision: int = 0
) -> dict[tuple[str, str], tuple[str, Any, str, int]]:
    """(method, template) -> (url, body, who, expected status); `supervision` the chemical
    tenant's 督办."""
    a = f"/api/v1/alarms/{alarm}"
    c = COAL
    now = time.time_ns() // 1_000_000
    span = f"start={now - 86_400_000}&end={now + 3_600_000}"  # the last day: the alarm is in it
    return {
        ("get", "/api/v1/me"): ("/api/v1/me", None, "chem", OPEN),
        ("get", "/api/v1/sensors"): ("/api/v1/sensors", None, "chem", OPEN),
        # (`?sensor=ch4-t1` by this key: 404, tests/test_api_sensor_filters.py)
        ("get", "/api/v1/latest"): ("/api/v1/latest", None, "chem", OPEN),
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
        ("get", "/api/v1/vehicles/{vehicle_id}"): (
            "/api/v1/vehicles/tanker-01",
            None,
            "coal",
            NOT_FOUND,
        ),
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
        # 报警督办 (the centre's alone, tests/test_jt809_supervise.py): not found first
        ("post", "/api/v1/alarms/{alarm_id}/supervise"): (
            f"{a}/supervise",
            {"deadline": 1},
            "chem",
            404,
        ),
        ("post", "/api/v1/alarms/{alarm_id}/disposal"): (
            f"{a}/disposal",
            {"step": "verify", "note": "n"},
            "chem",
            NOT_FOUND,
        ),
        # the centre's review of a closing: another tenant's alarm is 404 before the key's
        # standing is looked at (an enterprise's own alarm: 403)
        ("post", "/api/v1/alarms/{alarm_id}/review"): (
            f"{a}/review",
            {"decision": "return", "note": "n"},
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
        ("post", "/api/v1/notifications/retry"): (
            f"/api/v1/notifications/retry?subscription={COAL}/control-room",  # coal's dead one
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
        ("get", "/api/v1/data-quality/availability"): (
            f"/api/v1/data-quality/availability?{span}",
            None,
            "chem",
            OPEN,
        ),
        # the shift handover: the chemical company's shift holds nothing of the coal face
        ("get", "/api/v1/handover"): ("/api/v1/handover?hours=12", None, "chem", OPEN),
        ("get", "/api/v1/sites"): ("/api/v1/sites", None, "chem", OPEN),
        # lock-out tests (tests/test_lock_tests.py): another enterprise's plan is not found
        ("get", "/api/v1/lock-tests"): ("/api/v1/lock-tests", None, "chem", OPEN),
        ("post", "/api/v1/lock-tests"): (
            "/api/v1/lock-tests",
            {"sensor": "ch4-t1", "ts": now, "passed": True},
            "chem",
            NOT_FOUND,
        ),
        # interlock bypass approvals (tests/test_bypass_approvals.py): another's is not found
        ("get", "/api/v1/bypass-approvals"): ("/api/v1/bypass-approvals", None, "chem", OPEN),
        ("get", "/api/v1/bypass-approvals/{approval_id}"): (
            "/api/v1/bypass-approvals/1",
            None,
            "chem",
            NOT_FOUND,
        ),
        ("post", "/api/v1/bypass-approvals"): (
            "/api/v1/bypass-approvals",
            {
                "sensor": "ch4-t1",
                "approved_by": "x",
                "reason": "x",
                "measures": "x",
                "valid_from": now,
                "until": now + 3_600_000,
            },
            "chem",
            NOT_FOUND,
        ),
        ("post", "/api/v1/bypass-approvals/{approval_id}/revoke"): (
            "/api/v1/bypass-approvals/1/revoke",
            {"note": "x"},
            "chem",
            NOT_FOUND,
        ),
        # hidden-danger items (tests/test_hazards.py): another enterprise's item is not found
        ("get", "/api/v1/hazards"): ("/api/v1/hazards", None, "chem", OPEN),
        ("get", "/api/v1/hazards/{hazard_id}"): ("/api/v1/hazards/1", None, "chem", NOT_FOUND),
        ("post", "/api/v1/hazards"): (
            "/api/v1/hazards",
            {"tenant": c, "site": "face-1301", "description": "x"},
            "chem",
            NOT_FOUND,
        ),
        # the ledger's statistics (tests/test_hazards_stats.py): the key's own tenants only
        ("get", "/api/v1/hazards/stats"): ("/api/v1/hazards/stats?year=2026", None, "chem", OPEN),
        # listed supervision (挂牌督办; the centre's alone, tests/test_hazards_supervise.py):
        # another enterprise's item is not found before the role is told
        # the centre's 督办 and what became of them (tests/test_api_supervisions.py): an
        # enterprise sees its own tenant's only
        ("get", "/api/v1/supervisions"): ("/api/v1/supervisions", None, "coal", OPEN),
        ("get", "/api/v1/supervisions/{supervision_id}"): (
            f"/api/v1/supervisions/{supervision}",
            None,
            "coal",
            NOT_FOUND,
        ),
        ("post", "/api/v1/hazards/{hazard_id}/supervise"): (
            "/api/v1/hazards/1/supervise",
            {"level": "city", "authority": "x", "document_no": "x"},
            "chem",
            NOT_FOUND,
        ),
        ("post", "/api/v1/hazards/{hazard_id}/{action}"): (
            "/api/v1/hazards/1/plan",
            {"measures": "x"},
            "chem",
            NOT_FOUND,
        ),
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
        # the hub's readiness: the cause's code to an enterprise, nothing of a tenant's
        ("get", "/api/v1/readiness"): ("/api/v1/readiness", None, "chem", OPEN),
    }


# the live stream is tenant-scoped per event; tests/test_stream.py shows another tenant's events
# never reach a subscriber
ELSEWHERE = {("get", "/api/v1/stream")}


async def test_every_route_refuses_another_enterprise(rig: Rig) -> None:
    rig.hub.notifier.route()  # coal's notification of its alarm, given up on
    ((row, *_),) = rig.hub.notifier.store.outbox([COAL])
    rig.hub.notifier.store.settle([(row, "dead", 1, "HTTP 410 Gone", None)])
    table = cases(rig.alarm_id, row, rig.supervision)
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
        "alarm_actions": ["acknowledge", "shelve", "unshelve", "comment", "disposal", "review"],
    }
    # an enterprise may not shelve (the centre's) nor review its own closing; a viewer may do
    # nothing; a centre role limited to some tenants shelves but does not review
    assert answers["coal"]["tenants"] == [COAL]
    assert answers["coal"]["alarm_actions"] == ["acknowledge", "unshelve", "comment", "disposal"]
    r = await rig.client.get("/api/v1/me", headers=auth("chem-op"))
    assert r.json()["alarm_actions"] == ["acknowledge", "shelve", "unshelve", "comment", "disposal"]
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
        for (m, _), (url, *_) in cases(rig.alarm_id, supervision=rig.supervision).items()
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


async def test_a_query_parameter_a_route_does_not_take_is_422_never_ignored(rig: Rig) -> None:
    """`GET /latest?tenant=acme-chem` answered every tenant's readings, as if the filter held (a
    night dispatcher read them as that tenant's): a parameter a route does not take is 422 on
    every route of the table, naming it and what the route takes; never silence. After the
    key: without one it is 401 first."""
    for (method, _), (url, body, who, _want) in cases(
        rig.alarm_id, supervision=rig.supervision
    ).items():
        if not url.startswith("/api/v1/"):
            continue
        sep = "&" if "?" in url else "?"
        kw: dict[str, Any] = {} if body is None else {"json": body}
        r = await rig.client.request(
            method.upper(), f"{url}{sep}tenantt=x", headers=auth(who), **kw
        )
        assert r.status_code == 422, (method, url, r.status_code, r.text)
        assert "unknown query parameter(s) ['tenantt']" in r.json()["detail"], r.text
        r = await rig.client.request(method.upper(), f"{url}{sep}tenantt=x", **kw)
        assert r.status_code == 401, (method, url, r.status_code, r.text)
    # what the route takes is said, and a browser's cache-buster is let be
    r = await rig.client.get("/api/v1/latest?sensr=ch4-t1", headers=auth("op"))
    assert "this route takes: sensor, site, tenant" in r.json()["detail"], r.text
    r = await rig.client.get("/api/v1/latest?_=1764460800000", headers=auth("op"))
    assert r.status_code == 200, r.text
    # a change asked as a dry run under a mistyped name is refused, not made
    r = await rig.client.post(
        f"/api/v1/registry/tenants/{COAL}/sites?dryrun=true",
        json={"id": "face-1302"},
        headers=auth("admin"),
    )
    assert r.status_code == 422, r.text
    r = await rig.client.get(f"/api/v1/registry/tenants/{COAL}/sites", headers=auth("admin"))
    assert "face-1302" not in r.text


async def test_every_list_that_takes_a_tenant_honours_it_and_refuses_anothers(rig: Rig) -> None:
    """Each list route of the OpenAPI document that takes `tenant=`: a centre's key (every
    tenant) gets that tenant's rows alone; an enterprise's key asking for another tenant, or
    for none of that name, is 404 (never the other's rows, never an empty answer that reads as
    "nothing there"); asking for its own is its rows. The routes that do not take it refuse it
    (422, the test above)."""
    await rig.client.post(
        f"/api/v1/alarms/{rig.alarm_id}/acknowledge", json={"note": "n"}, headers=auth("op")
    )
    # (the chemical tenant's alarm: the rig's tanker, supervised)
    reg = rig.hub.reg
    index = [reg.sensor(s).index for s in ("ch4-t1", "tanker-01.speed")]  # type: ignore[union-attr]
    await rig.hub.store.write_readings(  # a reading of each tenant
        ReadingBatch(
            np.asarray(index, np.int32),
            np.full(2, time.time_ns() // 1_000_000, np.int64),
            np.asarray([0.4, 60.0]),
            np.zeros(2, np.uint8),
            np.zeros(2, np.int64),
            np.arange(2, dtype=np.int64),
        )
    )
    spec = (await rig.client.get("/openapi.json")).json()
    taking = sorted(
        path
        for path, ops in spec["paths"].items()
        if any(
            (p["name"], p["in"]) == ("tenant", "query")
            for p in ops.get("get", {}).get("parameters", [])
        )
    )
    assert taking == [
        "/api/v1/alarm-quality/bad-actors",
        "/api/v1/alarm-quality/chattering",
        "/api/v1/alarm-quality/handling",
        "/api/v1/alarm-quality/rate",
        "/api/v1/alarm-quality/standing",
        "/api/v1/alarms",
        "/api/v1/bypass-approvals",
        "/api/v1/data-quality/availability",
        "/api/v1/escalation-policies",
        "/api/v1/handover",
        "/api/v1/hazards",
        "/api/v1/hazards/stats",
        "/api/v1/latest",
        "/api/v1/lock-tests",
        "/api/v1/notifications",
        "/api/v1/sensors",
        "/api/v1/silences",
        "/api/v1/sites",
        "/api/v1/stream",  # (over a socket: tests/test_api_stream_key.py)
        "/api/v1/subscriptions",
        "/api/v1/supervisions",
        "/api/v1/vehicles",
    ]
    table = cases(rig.alarm_id, supervision=rig.supervision)
    for path in taking:
        if path == "/api/v1/stream":
            continue
        url = table[("get", path)][0]
        sep = "&" if "?" in url else "?"
        mine = await rig.client.get(f"{url}{sep}tenant={COAL}", headers=auth("op"))
        assert mine.status_code == 200, (path, mine.text)
        assert "acme-chem" not in mine.text and "tanker-01" not in mine.text, (path, mine.text)
        theirs = await rig.client.get(f"{url}{sep}tenant=acme-chem", headers=auth("op"))
        assert theirs.status_code == 200, (path, theirs.text)
        assert COAL not in theirs.text and "ch4-t1" not in theirs.text, (path, theirs.text)
        asks = (("chem", COAL, 404), ("chem", "nowhere", 404), ("coal", COAL, 200))
        for who, tenant, want in asks:
            r = await rig.client.get(f"{url}{sep}tenant={tenant}", headers=auth(who))
            assert r.status_code == want, (path, who, tenant, r.status_code, r.text)
            if want == 404:
                assert f"tenant {tenant!r}" in r.json()["detail"], r.text
                assert "ch4-t1" not in r.text
    # the lists with rows of both tenants show them to the centre, and one alone when asked
    for path, coal_row, chem_row in (
        ("/api/v1/latest", "ch4-t1", "tanker-01.speed"),
        ("/api/v1/vehicles", None, "tanker-01"),
        ("/api/v1/alarms", "ch4-t1", "tanker-01.speed"),
    ):
        both = (await rig.client.get(path, headers=auth("op"))).text
        chem = (await rig.client.get(f"{path}?tenant=acme-chem", headers=auth("op"))).text
        coal = (await rig.client.get(f"{path}?tenant={COAL}", headers=auth("op"))).text
        if coal_row:
            assert coal_row in both and coal_row in coal and coal_row not in chem, path
        assert chem_row in both and chem_row in chem and chem_row not in coal, path
