"""Limits per tenant on subscriptions, escalation policies, silences and the addresses of an
e-mail channel, on every write path (a security review, helper-163: an enterprise key made 300
e-mail subscriptions of 50 outside addresses, and one comment sent 15,002 recipients through the
centre's SMTP server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_api_url_password
import yaml
from test_api_alarms import CHEM, COAL, auth
from test_api_receivers_hidden import config_doc, tenant_of
from test_api_url_password import Rig

from hazardhub.settings import load_registry
from telemetry.errors import ConfigError
from telemetry.notifyconfig import MAX_RECIPIENTS, TENANT_LIMITS

ROOT = Path(__file__).resolve().parent.parent
rig = test_api_url_password.rig  # the app over a hub and its live configuration (a fixture)


def _mail(i: int, to: int = 1) -> dict[str, Any]:
    return {
        "id": f"m{i}",
        "channel": {"type": "email", "to": [f"p{j}@x.example" for j in range(to)]},
    }


async def test_an_enterprise_key_makes_at_most_the_limit_of_subscriptions(rig: Rig) -> None:
    limit = TENANT_LIMITS["subscription"]
    for i in range(limit):
        r = await rig.client.put(
            "/api/v1/subscriptions", json={"tenant": COAL, "spec": _mail(i)}, headers=auth("coal")
        )
        assert r.status_code == 200, (i, r.text)
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": _mail(limit)}, headers=auth("coal")
    )
    assert r.status_code == 422, r.text
    assert f"at most {limit} subscriptions" in r.text
    # an admin's key too: the limit is the tenant's
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": _mail(limit)}, headers=auth("admin")
    )
    assert r.status_code == 422, r.text
    # one of them replaced, at the limit: taken
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": COAL, "spec": _mail(3, 2)}, headers=auth("coal")
    )
    assert r.status_code == 200, r.text
    # another tenant has its own
    r = await rig.client.put(
        "/api/v1/subscriptions", json={"tenant": CHEM, "spec": _mail(0)}, headers=auth("chem")
    )
    assert r.status_code == 200, r.text


async def test_recipients_policies_and_silences_are_limited_through_the_api(rig: Rig) -> None:
    r = await rig.client.put(
        "/api/v1/subscriptions",
        json={"tenant": COAL, "spec": _mail(0, MAX_RECIPIENTS + 1)},
        headers=auth("coal"),
    )
    assert r.status_code == 422, r.text
    assert f"at most {MAX_RECIPIENTS} addresses" in r.text
    step = {"after_s": 60, "channel": {"type": "email", "to": ["a@x.example"]}}
    for i in range(TENANT_LIMITS["escalation"] + 1):
        spec = {"id": f"p{i}", "steps": [step]}
        r = await rig.client.put(
            "/api/v1/escalation-policies", json={"tenant": COAL, "spec": spec}, headers=auth("coal")
        )
    assert r.status_code == 422, r.text
    assert f"at most {TENANT_LIMITS['escalation']} escalation policies" in r.text
    for i in range(TENANT_LIMITS["silence"] + 1):
        spec = {"id": f"s{i}", "comment": "x", "recurrence": {"weekdays": [0], "start": "01:00",
                "duration_min": 30}}  # fmt: skip
        r = await rig.client.put(
            "/api/v1/silences", json={"tenant": COAL, "spec": spec}, headers=auth("op")
        )
    assert r.status_code == 422, r.text
    assert f"at most {TENANT_LIMITS['silence']} silences" in r.text


async def test_the_configuration_and_the_registry_refuse_a_tenant_over_the_limits(
    rig: Rig,
) -> None:
    limit = TENANT_LIMITS["subscription"]
    doc = await config_doc(rig)
    tenant_of(doc, CHEM)["subscriptions"] = [_mail(i) for i in range(limit + 1)]
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert f"at most {limit} subscriptions" in r.text
    tenant = tenant_of(await config_doc(rig), CHEM)
    tenant["subscriptions"] = [_mail(0, MAX_RECIPIENTS + 1)]
    r = await rig.client.put(f"/api/v1/registry/tenants/{CHEM}", json=tenant, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert f"at most {MAX_RECIPIENTS} addresses" in r.text
    tenant["subscriptions"] = [_mail(0, MAX_RECIPIENTS)]
    r = await rig.client.put(f"/api/v1/registry/tenants/{CHEM}", json=tenant, headers=auth("admin"))
    assert r.status_code == 200, r.text


def test_a_configuration_file_over_the_limit_is_refused_at_load(tmp_path: Path) -> None:
    silences = [
        {"id": f"s{i}", "comment": "x", "starts": 1_700_000_000_000, "ends": 1_700_000_100_000}
        for i in range(TENANT_LIMITS["silence"] + 1)
    ]
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "tenants": [{"id": "t", "silences": silences}]}))
    with pytest.raises(ConfigError) as err:
        load_registry(path, [ROOT / "profiles"])
    assert f"at most {TENANT_LIMITS['silence']} silences" in str(err.value)
    assert "hub.yaml" in str(err.value)


def test_the_centres_own_email_channels_take_the_tenants_limit_of_addresses(
    tmp_path: Path,
) -> None:
    """The centre's `notify:` subscriptions and policies took 50 addresses where a tenant's took
    20: its e-mails go through the same SMTP server, and hear every tenant's alarms."""
    over = [f"p{j}@x.example" for j in range(MAX_RECIPIENTS + 1)]
    path = tmp_path / "hub.yaml"
    for notify, said in (
        (
            {"subscriptions": [{"id": "city", "channel": {"type": "email", "to": over}}]},
            "notify.subscriptions: 'city': an e-mail channel sends to at most "
            f"{MAX_RECIPIENTS} addresses, not {MAX_RECIPIENTS + 1}",
        ),
        (
            {
                "escalation_policies": [
                    {
                        "id": "chief",
                        "steps": [{"after_s": 60, "channel": {"type": "email", "to": over}}],
                    }
                ]
            },
            f"notify.escalation_policies: 'chief': an e-mail channel sends to at most "
            f"{MAX_RECIPIENTS} addresses",
        ),
    ):
        doc = {"version": 1, "tenants": [{"id": "t"}], "notify": notify}
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as err:
            load_registry(path, [ROOT / "profiles"])
        assert said in str(err.value), str(err.value)
        assert "hub.yaml" in str(err.value) and "mailing list" in str(err.value)
    doc["notify"] = {
        "subscriptions": [{"id": "city", "channel": {"type": "email", "to": over[:-1]}}]
    }
    path.write_text(yaml.safe_dump(doc))
    load_registry(path, [ROOT / "profiles"])  # 20: taken


async def test_a_configuration_put_with_a_centre_channel_over_the_limit_is_refused(
    rig: Rig,
) -> None:
    doc = await config_doc(rig)
    over = [f"p{j}@x.example" for j in range(MAX_RECIPIENTS + 1)]
    doc["notify"] = {"subscriptions": [{"id": "city", "channel": {"type": "email", "to": over}}]}
    r = await rig.client.put("/api/v1/config", json=doc, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert f"at most {MAX_RECIPIENTS} addresses" in r.text
