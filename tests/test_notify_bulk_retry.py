"""A wrong webhook secret: the receiver answers 401 (as the documented receiver does), each
notification is dead at its first try, and the hub's log must say so (it said "retried with
backoff, given up after 86400 s"). Once the secret is corrected, every dead notification of the
subscription is sent again with one call (`POST /api/v1/notifications/retry`), tenant-scoped,
bounded, and idempotent (helper-241, a provincial early-warning system)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from test_api_alarms import CHEM, COAL, KEYS, SUBSCRIPTION, Hub, auth, opened

from api.app import AppContext, create_app
from api.auth import KeyRing
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore

from notify_rig import Rig
from receivers import WebhookReceiver

RETRY = "/api/v1/notifications/retry"


@pytest.fixture
async def api(rig: Rig, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API over the notification rig's state database and pipeline."""
    store = SqliteStore(rig.reg, tmp_path / "ts.db")
    await store.open()
    app = create_app(
        AppContext(
            rig.reg, store, rig.db, Metrics(), KeyRing(KEYS), desk=rig.desk, notifier=rig.notifier
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        yield c
    await store.close()


async def test_a_wrong_secret_is_said_permanent_and_its_dead_rows_go_again_at_once(
    rig: Rig, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alerts.notify")
    with WebhookReceiver(secret="right") as receiver:
        receiver.respond_with(401)  # the receiver refuses what the wrong secret signed
        hook = {"type": "webhook", "url": receiver.url, "secret": "wrong"}
        rig.subscribe(id="ews", channel=hook)
        rig.feed("ch4-t1", [0.3, 1.1, 0.3, 1.1, 0.3])  # raised, cleared, raised, cleared
        await rig.pump()
        dead = rig.notifier.store.outbox(None, "dead")
        assert len(dead) == 4 and len(receiver.requests) == 4
        assert all(row[8] == 1 for row in dead)  # one attempt each

        said = [r.getMessage() for r in caplog.records if r.name.startswith("alerts.notify")]
        first = [m for m in said if "subscription north-coal/ews" in m]
        assert len(first) == 1, said  # said once, however many rows died
        assert "not retried" in first[0] and "dead after one attempt" in first[0]
        assert f"{RETRY}?subscription=north-coal/ews" in first[0]
        assert not any("retried with backoff" in m for m in said), said
        rows = [m for m in said if m.startswith("notification north-coal/ews:")]
        assert len(rows) == 4 and all("not retried, after 1 attempt(s)" in m for m in rows), rows

        receiver.respond_with(200)
        rig.subscribe(id="ews", channel={**hook, "secret": "right"})
        r = await api.post(f"{RETRY}?subscription=north-coal/ews", headers=auth("coal"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["retried"] == 4 and body["more"] is False
        assert body["ids"] == sorted(row[0] for row in dead)
        again = await api.post(f"{RETRY}?subscription=north-coal/ews", headers=auth("coal"))
        assert again.json()["retried"] == 0  # pending now: left as it is
        await rig.pump()
        fresh = receiver.requests[4:]
        assert len(fresh) == 4 and all(q.signature_ok for q in fresh)
        assert sorted(q.key for q in fresh) == sorted(q.key for q in receiver.requests[:4])
        assert rig.notifier.store.outbox(None, "dead") == []
        # delivered: left as it is
        third = await api.post(RETRY, headers=auth("coal"))
        assert third.json() == {"retried": 0, "ids": [], "more": False, "next_after": None}


async def _dead_rows(hub: Hub) -> tuple[list[int], list[int]]:
    """Dead rows of coal's subscription (three alarms) and of chem's (one)."""
    for tenant, who in ((COAL, "coal"), (CHEM, "chem")):
        r = await hub.put("/subscriptions", {"tenant": tenant, "spec": SUBSCRIPTION}, who)
        assert r.status_code == 200, r.text
    for _ in range(3):
        hub.raise_alarm("ch4-t1")
        hub.feed("ch4-t1", [0.0])
    hub.raise_alarm("tanker-01.speed", 90)
    hub.notifier.route()
    rows = hub.notifier.store.outbox(None)
    hub.notifier.store.settle([(r[0], "dead", 1, "HTTP 401 Unauthorized", None) for r in rows])
    coal = sorted(r[0] for r in rows if r[2] == COAL)
    chem = sorted(r[0] for r in rows if r[2] == CHEM)
    return coal, chem


async def test_the_bulk_retry_is_tenant_scoped_bounded_and_paged(tmp_path: Any) -> None:
    async with opened(tmp_path) as hub:
        coal, chem = await _dead_rows(hub)
        assert len(coal) >= 3 and len(chem) >= 1
        sub = f"{COAL}/control-room"
        assert (
            await hub.post(f"/notifications/retry?subscription={sub}", None, "chem")
        ).status_code == 404
        assert (await hub.post("/notifications/retry", None, "viewer")).status_code == 403
        r = await hub.post("/notifications/retry?since=5&until=5", None, "coal")
        assert r.status_code == 422
        r = await hub.post("/notifications/retry?subscription=nope", None, "coal")
        assert r.status_code == 422

        # chem's key retries chem's rows alone
        r = await hub.post("/notifications/retry", None, "chem")
        assert r.json()["ids"] == chem
        # coal's, two a call: a page, then the rest
        r = await hub.post(f"/notifications/retry?subscription={sub}&limit=2", None, "coal")
        page = r.json()
        assert page["ids"] == coal[:2] and page["more"] is True
        assert page["next_after"] == coal[1]
        r = await hub.post(
            f"/notifications/retry?subscription={sub}&limit=2&after={page['next_after']}",
            None,
            "coal",
        )
        assert r.json()["ids"] == coal[2:4] and r.json()["more"] is (len(coal) > 4)
        statuses = {row[0]: row[9] for row in hub.notifier.store.outbox(None)}
        assert all(statuses[i] == "pending" for i in coal[:4] + chem)

        # a range of creation times: none made before the epoch's first second
        hub.notifier.store.settle([(i, "dead", 1, "HTTP 401", None) for i in coal])
        r = await hub.post("/notifications/retry?until=1000", None, "op")
        assert r.json()["retried"] == 0
        r = await hub.post("/notifications/retry?since=1000", None, "op")
        assert r.json()["ids"] == coal
