"""What an enterprise's or a viewer's key reads of a webhook and of the centre's receivers, and
what a masked secret stands for, over the real app (a security review, helper-163): the registry
showed the centre's webhook URLs and e-mail addresses to them (`/subscriptions` masked them); a
robot's token in a webhook URL's path (Feishu, Slack) was shown whole to every key; a masked
HMAC secret followed a changed URL through the registry and the configuration routes."""

from __future__ import annotations

from typing import Any

import pytest
import test_api_url_password
from test_api_alarms import CHEM, COAL, MASK, auth
from test_api_url_password import Rig

from api.hidden import CENTRE_HIDDEN, hide_url, keep_url

rig = test_api_url_password.rig  # the app over a hub and its live configuration (a fixture)
FEISHU_TOKEN = "2a3b9c4d-1e5f-4a6b-8c7d-0e9f1a2b3c4d"
FEISHU = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}"
SLACK_TOKEN = "aB3dE5gH7jK9mN1pQ3sT5vX7"
SLACK = f"https://hooks.slack.com/services/T0AB1CD2E/B0FG3HI4J/{SLACK_TOKEN}"
MAIL = "duty.officer@centre.example.cn"


async def config_doc(rig: Rig) -> dict[str, Any]:
    r = await rig.client.get("/api/v1/config?format=json", headers=auth("admin"))
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def tenant_of(doc: dict[str, Any], tenant: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in doc["tenants"] if t["id"] == tenant)
    return found


# the centre's receivers through the registry


async def test_the_registry_hides_the_centres_receivers_from_enterprise_and_viewer_keys(
    rig: Rig,
) -> None:
    doc = await config_doc(rig)
    for tenant in (COAL, CHEM):
        t = tenant_of(doc, tenant)
        t["escalation_policies"] = [
            {"id": "night", "steps": [{"after_s": 60, "channel": {"type": "email", "to": [MAIL]}}]}
        ]
        t["subscriptions"] = [
            {"id": "feishu", "channel": {"type": "webhook", "url": FEISHU, "secret": "hm"}},
            {"id": "mail", "channel": {"type": "email", "to": [MAIL]}, "escalation": "night"},
        ]
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 200, r.text
    for who, tenant in (("chem", CHEM), ("coal", COAL), ("viewer", COAL)):
        for path in (f"/api/v1/registry/tenants/{tenant}", "/api/v1/registry/tenants"):
            got = await rig.client.get(path, headers=auth(who))
            assert got.status_code == 200, got.text
            for shown in ("open.feishu.cn", FEISHU_TOKEN, MAIL, "centre.example.cn"):
                assert shown not in got.text, (who, path, got.text)
            assert CENTRE_HIDDEN in got.text
            (t,) = got.json() if isinstance(got.json(), list) else [got.json()]
            # what they are stays readable: their ids, matches and kinds of channel
            assert [s["channel"]["type"] for s in t["subscriptions"]] == ["webhook", "email"]
    # the centre reads its receivers, with the robot's token hidden
    for who in ("admin", "op", "chem-op"):
        got = await rig.client.get(f"/api/v1/registry/tenants/{CHEM}", headers=auth(who))
        assert hide_url(FEISHU) in got.text and MAIL in got.text, got.text
        assert FEISHU_TOKEN not in got.text


# a masked secret follows no changed URL


async def test_a_masked_secret_is_kept_for_its_url_only_on_every_path(rig: Rig) -> None:
    url = "https://ews.acme.example.cn/hook?x=1"
    doc = await config_doc(rig)
    channel = {"type": "webhook", "url": url, "secret": "hmac-1"}
    tenant_of(doc, CHEM)["subscriptions"] = [{"id": "ews", "channel": channel}]
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 200, r.text

    def secret() -> str:
        (sub,) = tenant_of(rig.admin.current().model_dump(), CHEM)["subscriptions"]
        return str(sub["channel"]["secret"])

    for elsewhere in ("https://evil.example.cn/hook?x=1", "https://ews.acme.example.cn/other"):
        # the configuration
        doc = await config_doc(rig)
        sub = tenant_of(doc, CHEM)["subscriptions"][0]
        assert sub["channel"]["secret"] == MASK
        sub["channel"]["url"] = elsewhere
        r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
        assert r.status_code == 422, r.text
        assert "give the secret again for a new URL" in r.text
        assert r.json()["errors"][0]["loc"][-2:] == ["channel", "secret"]
        # the registry
        tenant = tenant_of(await config_doc(rig), CHEM)
        tenant["subscriptions"][0]["channel"]["url"] = elsewhere
        r = await rig.client.put(
            f"/api/v1/registry/tenants/{CHEM}", json=tenant, headers=auth("admin")
        )
        assert r.status_code == 422, r.text
        assert "give the secret again for a new URL" in r.text
        assert secret() == "hmac-1"
    # the same receiver (another query): the secret stays; a new secret given: taken
    tenant = tenant_of(await config_doc(rig), CHEM)
    tenant["subscriptions"][0]["channel"]["url"] = "https://ews.acme.example.cn:443/hook?x=2"
    r = await rig.client.put(f"/api/v1/registry/tenants/{CHEM}", json=tenant, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert secret() == "hmac-1"
    doc = await config_doc(rig)
    tenant_of(doc, CHEM)["subscriptions"][0]["channel"].update(
        url="https://evil.example.cn/hook", secret="hmac-2"
    )
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert secret() == "hmac-2"


async def test_subscriptions_keep_a_masked_secret_for_the_same_receiver_only(rig: Rig) -> None:
    url = "https://ews.acme.example.cn/hook?x=1"
    spec = {"id": "ews", "channel": {"type": "webhook", "url": url, "secret": "hmac-1"}}
    body = {"tenant": COAL, "spec": spec}
    assert (await rig.client.put("/api/v1/subscriptions", json=body, headers=auth("op"))).is_success
    back = {**spec, "channel": {**spec["channel"], "secret": MASK}}
    for moved, code in (
        ("https://ews.acme.example.cn/hook?x=2", 200),  # another query: the same receiver
        ("https://ews.acme.example.cn/other", 422),
        ("https://ews.acme.example.cn:8443/hook", 422),
    ):
        body = {"tenant": COAL, "spec": {**back, "channel": {**back["channel"], "url": moved}}}
        r = await rig.client.put("/api/v1/subscriptions", json=body, headers=auth("op"))
        assert r.status_code == code, (moved, r.text)
    assert rig.stored("subscription").channel.secret == "hmac-1"


# a robot's token in the path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (FEISHU, f"https://open.feishu.cn/open-apis/bot/v2/hook/{MASK}"),
        (SLACK, f"https://hooks.slack.com/services/T0AB1CD2E/B0FG3HI4J/{MASK}"),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=9f2c4e5d6a7b8c9d0e1f",
            f"https://oapi.dingtalk.com/robot/send?access_token={MASK}",
        ),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7d1e-4b2c",
            f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={MASK}",
        ),
        # a token in a parameter of any name; words are no tokens
        ("http://h/in?id=0a1b2c3d4e5f6a7b8c9d", f"http://h/in?id={MASK}"),
        ("http://h/notifications-receiver/alarms", "http://h/notifications-receiver/alarms"),
        ("http://h:8080/api/v1/alarm-events?page=2", "http://h:8080/api/v1/alarm-events?page=2"),
    ],
)
def test_a_token_in_a_url_is_hidden_and_the_receiver_stays_recognisable(
    url: str, shown: str
) -> None:
    assert hide_url(url) == shown
    assert keep_url(shown, url) == (url if shown != url else None)


async def test_a_robots_token_in_the_path_is_masked_and_kept(rig: Rig) -> None:
    for url, token in ((FEISHU, FEISHU_TOKEN), (SLACK, SLACK_TOKEN)):
        spec = {"id": "robot", "channel": {"type": "webhook", "url": url, "secret": "hm-1"}}
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": spec}, headers=auth("op")
        )
        assert r.status_code == 200, r.text
        got = await rig.client.get(f"/api/v1/subscriptions/{COAL}/robot", headers=auth("op"))
        assert token not in got.text and hide_url(url) in got.text, got.text
        back = got.json()["spec"]
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": back}, headers=auth("op")
        )
        assert r.status_code == 200, r.text
        assert rig.stored("subscription").channel.url == url
        assert rig.stored("subscription").channel.secret == "hm-1"  # the same receiver
        away = {**back, "channel": {**back["channel"], "url": f"https://evil.example.cn/{MASK}"}}
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": away}, headers=auth("op")
        )
        assert r.status_code == 422, r.text
        assert rig.stored("subscription").channel.url == url
