"""The dashboard under the hub's Content-Security-Policy, in headless Chromium: it logs in, opens
its live stream and its alarm list with no policy violation, and an inline script put into it
is refused (a security review, helper-163: no policy was sent, so a script injected anywhere in
the page ran, and another site could frame it)."""

from __future__ import annotations

import json

import pytest
from cdp import Browser

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.config import ApiKeySpec

from e2e_helpers import mine_registry, running_hub
from services import free_port

# every violation the page reports, kept on the window from before its first script
WATCH = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));"
)


@pytest.mark.slow
async def test_the_dashboard_works_under_its_policy_and_an_injected_script_is_refused(
    mosquitto, tmp_path
):
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key("k-operator-1"), role="operator")],
    )
    async with running_hub(hub):
        browser = Browser()
        try:
            await browser.open("about:blank")
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
            await browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            await browser.wait_for("document.body.dataset.ready === '1'")
            await browser.js("document.querySelector('#key').value = 'k-operator-1'")
            await browser.js("document.querySelector('#login-form button').click()")
            await browser.wait_for("!document.querySelector('#app').hidden")
            await browser.wait_for("document.querySelector('#live').classList.contains('on')")
            await browser.wait_for("document.querySelector('#alarms') !== null")
            assert await browser.js("window.__csp") == []
            # a script slipped into the page (an XSS) does not run, and is reported
            await browser.js(
                "const s = document.createElement('script');"
                "s.textContent = 'window.__ran = true'; document.body.appendChild(s); 1"
            )
            violations = await browser.wait_for("window.__csp.length && window.__csp")
            assert await browser.js("window.__ran === undefined"), "an inline script ran"
            assert [v.split()[0] for v in violations] == ["script-src-elem"], json.dumps(violations)
        finally:
            await browser.close()
