"""The password of a webhook URL's user info (`http://user:password@host/`, sent as HTTP Basic
authorization) and the tokens of its query (a DingTalk robot's `access_token`, a WeCom robot's
`key`) are secrets: every key (a viewer's too) reads them as ``********`` in subscriptions,
escalation policies, the registry and the configuration export; a spec or configuration saved
back with the masked URL keeps the stored password, and a masked URL pointed elsewhere is
refused (it would send the stored password to another host)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_api_alarms import CHEM, COAL, KEYS, MASK, Hub, auth

from api.app import AppContext, create_app
from api.auth import KeyRing
from api.configadmin import ConfigAdmin
from api.hidden import hide_url, keep_url
from ingest.metrics import Metrics

from e2e_helpers import live_config

URL = "http://duty:S3cr3t@hooks.example.cn:8080/alarm?x=1"
SHOWN = f"http://duty:{MASK}@hooks.example.cn:8080/alarm?x=1"
ELSEWHERE = f"http://duty:{MASK}@evil.example.cn/alarm"


@dataclass
class Rig:
    hub: Hub
    admin: ConfigAdmin
    client: httpx.AsyncClient

    def stored(self, kind: str) -> Any:
        ((_, spec),) = self.hub.notifier.objects(kind, [COAL])
        return spec

    def config_url(self) -> str:
        (tenant,) = (t for t in self.admin.current().tenants if t.id == CHEM)
        channel = tenant.subscriptions[0].channel
        assert channel.type == "webhook"
        return channel.url


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
        notifier=hub.notifier,
        config=admin,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
    ) as client:
        yield Rig(hub, admin, client)
    await hub.store.close()
    hub.db.close()
    rdb.close()


async def test_subscription_url_password_is_masked_and_kept(rig: Rig) -> None:
    spec = {"id": "desk", "channel": {"type": "webhook", "url": URL, "secret": "hmac-1"}}
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": spec}, headers=auth("coal")
    )
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["channel"]["url"] == SHOWN
    for url in ("/api/v1/subscriptions", f"/api/v1/subscriptions/{COAL}/desk"):
        got = await rig.client.get(url, headers=auth("viewer"))
        assert got.status_code == 200
        assert "S3cr3t" not in got.text and SHOWN in got.text, got.text
    # read back and saved unchanged: the stored password stays
    shown = await rig.client.get(f"/api/v1/subscriptions/{COAL}/desk", headers=auth("coal"))
    back = {**shown.json()["spec"], "name": "desk (nights)"}
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": back}, headers=auth("coal")
    )
    assert r.status_code == 200, r.text
    assert rig.stored("subscription").name == "desk (nights)"
    assert rig.stored("subscription").channel.url == URL
    assert rig.stored("subscription").channel.secret == "hmac-1"
    # the mask pointed at another host stands for nothing
    away = {**back, "channel": {**back["channel"], "url": ELSEWHERE}}
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": away}, headers=auth("coal")
    )
    assert r.status_code == 422, r.text
    assert "password" in r.text
    assert rig.stored("subscription").channel.url == URL


async def test_escalation_step_url_password_is_masked_and_kept(rig: Rig) -> None:
    step = {"after_s": 60, "channel": {"type": "webhook", "url": URL}}
    spec = {"id": "night", "steps": [step]}
    r = await rig.client.put(
        "/api/v1/escalation-policies", json={"tenant": COAL, "spec": spec}, headers=auth("coal")
    )
    assert r.status_code == 200, r.text
    got = await rig.client.get("/api/v1/escalation-policies", headers=auth("viewer"))
    assert "S3cr3t" not in got.text and SHOWN in got.text
    back = got.json()[0]["spec"]
    r = await rig.client.put(
        "/api/v1/escalation-policies", json={"tenant": COAL, "spec": back}, headers=auth("coal")
    )
    assert r.status_code == 200, r.text
    assert rig.stored("escalation").steps[0].channel.url == URL


async def test_configuration_url_password_is_masked_and_kept(rig: Rig) -> None:
    doc = (await rig.client.get("/api/v1/config?format=json", headers=auth("admin"))).json()
    chem = next(t for t in doc["tenants"] if t["id"] == CHEM)
    chem["subscriptions"] = [{"id": "ews", "channel": {"type": "webhook", "url": URL}}]
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert rig.config_url() == URL
    # the export, in both formats, and the registry (to an enterprise's key the centre's
    # receiver is not shown at all: test_api_receivers_hidden)
    for url, who in (
        ("/api/v1/config", "admin"),
        ("/api/v1/config?format=json", "admin"),
        (f"/api/v1/registry/tenants/{CHEM}", "chem-op"),
        ("/api/v1/registry/tenants", "admin"),
    ):
        got = await rig.client.get(url, headers=auth(who))
        assert got.status_code == 200, (url, got.text)
        assert "S3cr3t" not in got.text and SHOWN in got.text, (url, got.text)
    # the export imported back unchanged keeps the password
    exported = (await rig.client.get("/api/v1/config", headers=auth("admin"))).text
    r = await rig.client.put(
        "/api/v1/config?comment=round+trip",
        content=exported,
        headers={**auth("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    assert rig.config_url() == URL
    # a masked password with another host is refused, located at the URL
    moved = yaml.safe_load(exported)
    chem = next(t for t in moved["tenants"] if t["id"] == CHEM)
    chem["subscriptions"][0]["channel"]["url"] = ELSEWHERE
    r = await rig.client.put("/api/v1/config", json=moved, headers=auth("admin"))
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["loc"][-3:] == [0, "channel", "url"] and "password" in error["msg"]
    assert rig.config_url() == URL


DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=9f2c4e5d6a7b"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx&debug=1"


async def test_a_robots_token_in_the_query_is_masked_and_kept(rig: Rig) -> None:
    for url, token in ((DINGTALK, "9f2c4e5d6a7b"), (WECOM, "693a91f6-7xxx")):
        spec = {"id": "robot", "channel": {"type": "webhook", "url": url}}
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": spec}, headers=auth("coal")
        )
        assert r.status_code == 200, r.text
        got = await rig.client.get(f"/api/v1/subscriptions/{COAL}/robot", headers=auth("viewer"))
        assert token not in got.text and hide_url(url) in got.text, got.text
        # saved back as read: the token stays; the masked token on another host is refused
        back = got.json()["spec"]
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": back}, headers=auth("coal")
        )
        assert r.status_code == 200, r.text
        assert rig.stored("subscription").channel.url == url
        away = {
            **back,
            "channel": {**back["channel"], "url": f"https://evil.example.cn/?key={MASK}"},
        }
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": away}, headers=auth("coal")
        )
        assert r.status_code == 422, r.text
        assert rig.stored("subscription").channel.url == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (DINGTALK, f"https://oapi.dingtalk.com/robot/send?access_token={MASK}"),
        (WECOM, f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={MASK}&debug=1"),
        ("http://h/x?Token=a&sign=b&x=c#f", f"http://h/x?Token={MASK}&sign={MASK}&x=c#f"),
        ("http://u:p@h/x?api%5Fkey=z", f"http://u:{MASK}@h/x?api%5Fkey={MASK}"),
        ("http://h/x?token=&page=k", "http://h/x?token=&page=k"),  # empty, not a secret name
        (
            "http://h/x?X-Amz-Signature=s&X-Amz-Date=d",
            f"http://h/x?X-Amz-Signature={MASK}&X-Amz-Date=d",
        ),
        ("http://h/x?appKey=a&Access-Token=b", f"http://h/x?appKey={MASK}&Access-Token={MASK}"),
        ("http://u:p@h/x", f"http://u:{MASK}@h/x"),
        ("https://u:p@ss@h:443", f"https://u:{MASK}@h:443"),  # the user info ends at the last @
        ("http://u:p@h?q=a@b#c", f"http://u:{MASK}@h?q=a@b#c"),
        ("http://h/a:b@c", "http://h/a:b@c"),  # an @ after the authority is the path's
        ("http://u@h/", "http://u@h/"),  # a user without a password
        ("http://u:@h/", "http://u:@h/"),
        ("http://h/", "http://h/"),
    ],
)
def test_hide_url_hides_only_the_password_of_the_user_info(url: str, shown: str) -> None:
    assert hide_url(url) == shown
    assert keep_url(shown, url) == (url if shown != url else None)
