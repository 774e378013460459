"""A configuration file that wins at start (changed since the hub last read it) is not checked
against the objects made through the API: a tenant's 21 subscriptions in the file and 30 made
through the API are 51, over its limit of 50, and nothing said so. `over_limit_warnings` says it
once per tenant and kind (the hub logs each line at start); every object keeps working.
Against a real hub (Mosquitto, the embedded store) and its API over a socket."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_registry_api import auth, make_hub

from api.configlimits import over_limit_warnings
from hazardhub.hub import Hub
from telemetry.notifyconfig import TENANT_LIMITS
from telemetry.registry import Registry

from e2e_helpers import mine_registry, running_hub
from services import free_port

TENANT = "ly-chem"
SUBS, POLICIES = TENANT_LIMITS["subscription"], TENANT_LIMITS["escalation"]


def _registry(subs: int, policies: int) -> Registry:
    """The mine's configuration with one more tenant, holding `subs` subscriptions and
    `policies` escalation policies in the file."""
    sub = "      - {{id: file{k}, channel: {{type: email, to: [f{k}@x.example]}}}}"
    pol = (
        "      - {{id: filep{k}, steps: [{{after_s: 60, channel: "
        "{{type: email, to: [duty@x.example]}}}}]}}"
    )
    text = f"  - id: {TENANT}\n"
    text += "    subscriptions:\n" + "\n".join(sub.format(k=k) for k in range(subs)) + "\n"
    if policies:
        text += "    escalation_policies:\n"
        text += "\n".join(pol.format(k=k) for k in range(policies)) + "\n"
    return mine_registry(free_port(), 1.0, text if subs else f"  - id: {TENANT}\n")


async def _put(api: httpx.AsyncClient, path: str, spec: dict[str, Any]) -> None:
    r = await api.put(f"/api/v1/{path}", json={"tenant": TENANT, "spec": spec}, headers=auth())
    assert r.status_code == 200, r.text


async def test_a_file_that_wins_at_start_over_a_tenants_limits_is_said_once(
    mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hazardhub")
    hub = make_hub(tmp_path, mosquitto.port, _registry(0, 0))
    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}") as api,
    ):
        for i in range(30):
            spec = {"id": f"api{i}", "channel": {"type": "email", "to": [f"a{i}@x.example"]}}
            await _put(api, "subscriptions", spec)
        for i in range(10):
            step = {"after_s": 60, "channel": {"type": "email", "to": ["duty@x.example"]}}
            await _put(api, "escalation-policies", {"id": f"apip{i}", "steps": [step]})
        assert over_limit_warnings(hub.notifier, hub.registry.config) == []  # at the limits

    # the file changed meanwhile: 21 subscriptions and 11 policies of its own
    again: Hub = make_hub(tmp_path, mosquitto.port, _registry(SUBS - 30 + 1, POLICIES - 10 + 1))
    async with running_hub(again):
        tenant = next(t for t in again.registry.config.tenants if t.id == TENANT)
        assert len(tenant.subscriptions) == 21  # the file won
        said = over_limit_warnings(again.notifier, again.registry.config)
        assert len(said) == 2, said  # once per tenant and kind
        logged = [r.getMessage() for r in caplog.records if "over the limit of" in r.getMessage()]
        assert logged == said, logged  # the hub said them at start, once
        subs, policies = said
        assert subs.startswith(
            f"tenant '{TENANT}': 21 subscriptions in the configuration and 30 more made "
            f"through the API (GET /api/v1/subscriptions?tenant={TENANT}) are 51, over the "
            f"limit of {SUBS}"
        ), subs
        assert "all keep working" in subs and "delete 1 through the API" in subs, subs
        assert f"DELETE /api/v1/subscriptions/{TENANT}/<id>" in subs, subs
        assert policies.startswith(
            f"tenant '{TENANT}': 11 escalation policies in the configuration and 10 more made "
            f"through the API (GET /api/v1/escalation-policies?tenant={TENANT}) are 21, over the "
            f"limit of {POLICIES}"
        ), policies
        # every one keeps working: routed as before
        assert len(again.notifier.objects("subscription", [TENANT])) == 51
        assert len(again.notifier.objects("escalation", [TENANT])) == 21
