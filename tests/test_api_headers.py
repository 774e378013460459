"""The browser's security headers on every answer of the app (a security review, helper-163:
none were sent, so another site could frame the dashboard)."""

from __future__ import annotations

import test_api_url_password
from test_api_alarms import auth
from test_api_url_password import Rig

rig = test_api_url_password.rig  # the app over a hub and its live configuration (a fixture)


async def test_every_answer_carries_the_browsers_security_headers(rig: Rig) -> None:
    for path, who in (
        ("/", None),
        ("/healthz", None),
        ("/static/app.js", None),
        ("/api/v1/me", None),  # 401
        ("/api/v1/me", "viewer"),
        ("/api/v1/no-such-route", "viewer"),
        ("/docs", None),
    ):
        r = await rig.client.get(path, headers=auth(who) if who else {})
        h = r.headers
        assert h["x-frame-options"] == "DENY", path
        assert h["x-content-type-options"] == "nosniff", path
        assert h["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert "default-src 'self'" in h["content-security-policy"], path
        inline = "'unsafe-inline'" in h["content-security-policy"]
        assert inline == (path == "/docs"), path
