"""Where an enterprise's webhook may POST (`alerts.notify.netguard`): the public internet and the
networks the centre lists, never the hub's own host or the centre's network, checked at every
connection against the addresses the name resolves to. The centre's webhooks go anywhere."""

from __future__ import annotations

import logging
from ipaddress import ip_network

import pytest

from alerts.notify.delivery import CHANNEL
from alerts.notify.http import literal_refusal, refused_destination
from alerts.notify.netguard import AddressGuard
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.notifyconfig import EscalationPolicySpec, SubscriptionSpec
from telemetry.registry import build_registry

from e2e_helpers import ROOT
from notify_rig import Rig
from receivers import WebhookReceiver

REFUSED = "an address an enterprise's webhook may not reach"


@pytest.mark.parametrize(
    ("address", "permitted"),
    [
        ("8.8.8.8", True),
        ("114.114.114.114", True),
        ("2400:3200::1", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.20", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),  # shared address space (CGNAT)
        ("224.0.0.1", False),
        ("fe80::1%eth0", False),
        ("fc00::5", False),
        ("198.18.0.1", False),  # benchmarking
        ("240.0.0.1", False),  # reserved
        # IPv6 forms that carry an IPv4 address or route inside (helper-75)
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::ffff:0:7f00:1", False),  # IPv4-translated
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::a00:1", False),  # local-use NAT64: refused whole
        ("64:ff9b:1:a00:0:100:808:808", False),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("fec0::1", False),  # site-local
        ("not an address", False),
    ],
)
def test_only_public_addresses_by_default(address, permitted):
    assert AddressGuard().permits(address) is permitted


def test_the_centre_allows_networks_of_its_choosing():
    guard = AddressGuard.of([ip_network("10.20.0.0/16"), ip_network("::1/128")])
    assert guard.permits("10.20.7.7") and guard.permits("::1")
    assert not guard.permits("10.21.0.1") and not guard.permits("127.0.0.1")
    assert guard.permits("::ffff:10.20.0.1")  # the same host, mapped
    assert guard.permits("8.8.8.8")


def test_an_allowed_ipv6_network_is_looked_at_first():
    nat64 = AddressGuard.of([ip_network("64:ff9b::/96")])  # the centre's NAT64, allowed
    assert nat64.permits("64:ff9b::a00:1") and not AddressGuard().permits("64:ff9b::a00:1")


def test_an_address_in_the_url_is_judged_without_resolving():
    """Judged at once on save: queued behind names whose DNS never answers, an address was let
    be when the wait ran out (helper-78)."""
    guard = AddressGuard()
    assert literal_refusal("http://169.254.169.254/latest", guard).startswith("169.254.169.254")
    assert literal_refusal("http://[::1]:8086/query", guard) is not None
    assert literal_refusal("https://8.8.8.8/hook", guard) == ""
    for other_form in ("127.1", "2130706433", "0x7f.0.0.1"):  # loopback all the same
        assert literal_refusal(f"http://{other_form}:8086/query", guard), other_form
    assert literal_refusal("https://hooks.example.cn/x", guard) is None  # a name: resolved


def test_a_url_is_judged_by_what_its_host_resolves_to():
    guard = AddressGuard()
    for url in (
        "http://127.0.0.1:8086/query?q=DROP+DATABASE+hazardhub",
        "http://localhost:8086/query",
        "https://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
    ):
        problem = refused_destination(url, guard)
        assert problem is not None and REFUSED in problem, url
    assert refused_destination("https://8.8.8.8/hook", guard) is None
    assert (
        refused_destination("http://127.0.0.1:8086/", AddressGuard.of([ip_network("127.0.0.0/8")]))
        is None
    )
    # a name that does not resolve (yet) is let be: every connection is checked again
    assert refused_destination("https://no-such-host.invalid/hook", guard) is None


def _with_networks(rig: Rig, *networks: str) -> None:
    data = rig.reg.config.model_dump(mode="json", by_alias=True)
    data["notify"]["enterprise_webhook_networks"] = list(networks)
    profiles, packs = load_profiles(ROOT / "profiles")
    rig.notifier.set_registry(
        build_registry(HubConfig.model_validate(data), profiles, packs, "allowed.yaml")
    )


async def test_an_enterprises_webhook_into_the_centres_network_is_refused_at_connection(
    rig, caplog
):
    with WebhookReceiver() as receiver:
        for sub_id, url, actor, owner in (
            ("ews", receiver.url, "coal", "enterprise"),  # by IP
            ("ews-name", receiver.url.replace("127.0.0.1", "localhost"), "coal", "enterprise"),
            ("desk", receiver.url, "op", "centre"),
        ):
            spec = SubscriptionSpec.model_validate(
                {"id": sub_id, "channel": {"type": "webhook", "url": url}}
            )
            # straight to the notifier: a name resolving elsewhere later passes the API's check
            rig.notifier.put("subscription", "north-coal", spec, actor, owner=owner)
        rig.feed("ch4-t1", [0.3, 1.1])
        with caplog.at_level(logging.WARNING, logger="alerts.notify.delivery"):
            await rig.pump()
        assert [p.json()["subscription"] for p in receiver.requests] == ["north-coal/desk"]
        # the log names each as it was sent and as the outbox lists it: with the installation
        said = [r.getMessage() for r in caplog.records if " dead: " in r.getMessage()]
        assert len(said) == 2
        assert all(f"@{rig.notifier.outbox.installation} dead: refused" in m for m in said)
        dead = {r[4]: r[10] for r in rig.notifier.store.outbox(None, "dead")}
        assert dead == {
            "north-coal/ews": f"refused: 127.0.0.1 resolves to {REFUSED} (loopback, private, "
            "link-local or reserved; the centre may allow networks in "
            "notify.enterprise_webhook_networks)",
            "north-coal/ews-name": dead["north-coal/ews"].replace("127.0.0.1", "localhost", 1),
        }

        # the centre allows loopback for enterprises: the next alarm reaches both of theirs
        _with_networks(rig, "127.0.0.0/8", "::1/128")
        rig.feed("co", [5.0, 40.0])
        await rig.pump()
        told = sorted(p.json()["subscription"] for p in receiver.requests[1:])
        assert told == ["north-coal/desk", "north-coal/ews", "north-coal/ews-name"]

        # and the two refused before, sent again by hand, go out now with their keys
        dead = rig.notifier.store.outbox(None, "dead")
        for row in dead:
            assert rig.notifier.store.retry_dead(row[0], ["north-coal"], rig.now)[9] == "pending"
        await rig.pump()
        again = sorted(p.key for p in receiver.requests[4:])
        assert again == sorted(row[1] for row in dead)
        assert rig.notifier.store.outbox(None, "dead") == []


async def test_an_enterprises_escalation_step_is_guarded_under_the_centres_subscription(rig):
    with WebhookReceiver() as receiver:
        policy = EscalationPolicySpec.model_validate(
            {
                "id": "boss",
                "steps": [{"after_s": 60, "channel": {"type": "webhook", "url": receiver.url}}],
            }
        )
        rig.notifier.put("escalation", "north-coal", policy, "coal", owner="enterprise")
        rig.subscribe(id="duty", escalation="boss", match={"events": ["escalation"]})
        rig.feed("ch4-t1", [0.3, 1.1])
        await rig.pump()
        await rig.pump(61)
        assert receiver.requests == []
        ((sub, error),) = [(r[4], r[10]) for r in rig.notifier.store.outbox(None, "dead")]
        assert sub == "north-coal/duty" and REFUSED in error

        # the same step in a policy of the centre's goes out
        rig.notifier.put(
            "escalation", "north-coal", policy.model_copy(update={"id": "chief"}), "op"
        )
        rig.subscribe(id="duty", escalation="chief", match={"events": ["escalation"]})
        rig.feed("co", [5.0, 40.0])
        await rig.pump()
        await rig.pump(61)
        assert [p.json()["subscription"] for p in receiver.requests] == ["north-coal/duty"]


async def test_rows_queued_before_the_guard_are_judged_by_their_object_now(rig):
    """A hub of before queued an enterprise's notifications with a plain channel: after the
    upgrade they went to 127.0.0.1 at start, and through a retry (helper-79). Their object
    decides: the subscription's, or for an escalation step its policy's."""
    with WebhookReceiver() as receiver:
        hook = {"type": "webhook", "url": receiver.url}
        policy = EscalationPolicySpec.model_validate(
            {"id": "boss", "steps": [{"after_s": 60, "channel": hook}]}
        )
        rig.notifier.put("escalation", "north-coal", policy, "op")  # the centre's policy
        for sub_id, owner in (("ews", "enterprise"), ("desk", "centre")):
            spec = SubscriptionSpec.model_validate(
                {"id": sub_id, "channel": hook, "escalation": "boss"}
            )
            rig.notifier.put("subscription", "north-coal", spec, "k", owner=owner)
        plain = CHANNEL.dump_json(
            SubscriptionSpec.model_validate({"id": "x", "channel": hook}).channel
        ).decode()
        old = [
            ("north-coal/ews:e1", "north-coal/ews"),  # the enterprise's: refused now
            ("north-coal/desk:e1", "north-coal/desk"),  # the centre's: goes
            ("north-coal/ews:x7:0", "north-coal/ews"),  # the centre's policy's step: goes
            ("north-coal/gone:e1", "north-coal/gone"),  # deleted since: whose? guarded
        ]
        with rig.notifier.outbox.transaction() as con:
            rig.notifier.store.add_outbox_rows(
                con,
                [
                    (key, "north-coal", "s", sub, plain, "x", "[]", rig.now, rig.now, None, 0, None)
                    for key, sub in old
                ],
            )
        await rig.pump()
        got = sorted(p.key.split("@")[0] for p in receiver.requests)
        assert got == ["north-coal/desk:e1", "north-coal/ews:x7:0"]
        dead = {r[1].split("@")[0]: r[10] for r in rig.notifier.store.outbox(None, "dead")}
        assert sorted(dead) == ["north-coal/ews:e1", "north-coal/gone:e1"]
        assert all(REFUSED in error for error in dead.values())
        # sent again by hand, they are refused again
        for row in rig.notifier.store.outbox(None, "dead"):
            rig.notifier.store.retry_dead(row[0], None, rig.now)
        await rig.pump(1)
        assert len(receiver.requests) == 2
        assert len(rig.notifier.store.outbox(None, "dead")) == 2


def test_the_enterprises_webhooks_the_guard_refuses_are_said_at_start(rig):
    hook = {"type": "webhook", "url": "http://127.0.0.1:8086/query"}
    for sub_id, owner in (("ews", "enterprise"), ("desk", "centre")):
        spec = SubscriptionSpec.model_validate({"id": sub_id, "channel": hook})
        rig.notifier.put("subscription", "north-coal", spec, "k", owner=owner)
    named = SubscriptionSpec.model_validate(
        {"id": "named", "channel": {"type": "webhook", "url": "https://hooks.example.cn/x"}}
    )
    rig.notifier.put("subscription", "north-coal", named, "k", owner="enterprise")
    (line,) = rig.notifier.guarded_refusals()
    assert line.startswith("subscription 'ews' of north-coal (an enterprise's): 127.0.0.1")
    _with_networks(rig, "127.0.0.0/8")
    assert rig.notifier.guarded_refusals() == []


async def test_an_enterprises_old_row_and_the_centres_never_share_a_batch(rig):
    """Batched by channel text, an enterprise's row of before the guard and the centre's of the
    same text went in one POST, which the guard refused whole: the centre's was lost
    (helper-80)."""
    with WebhookReceiver() as receiver:
        hook = {"type": "webhook", "url": receiver.url, "batch_max": 10}
        for sub_id, owner in (("ews", "enterprise"), ("desk", "centre")):
            spec = SubscriptionSpec.model_validate({"id": sub_id, "channel": hook})
            rig.notifier.put("subscription", "north-coal", spec, "k", owner=owner)
        plain = CHANNEL.dump_json(
            SubscriptionSpec.model_validate({"id": "x", "channel": hook}).channel
        ).decode()
        with rig.notifier.outbox.transaction() as con:
            rig.notifier.store.add_outbox_rows(
                con,
                [
                    (
                        f"north-coal/{sub}:e1",
                        "north-coal",
                        "s",
                        f"north-coal/{sub}",
                        plain,
                        "x",
                        "[]",
                        rig.now,
                        rig.now,
                        None,
                        0,
                        None,
                    )
                    for sub in ("ews", "desk")
                ],
            )
        await rig.pump()
        assert [p.key.split("@")[0] for p in receiver.requests] == ["north-coal/desk:e1"]
        (dead,) = rig.notifier.store.outbox(None, "dead")
        assert dead[1].startswith("north-coal/ews:e1@")
