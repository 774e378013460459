"""The dashboard in headless Chromium, logged in: a page of the hub at `port` in `lang`, every
violation of the hub's content policy it reports recorded (`window.__csp`, asserted empty when
the page is left), signed in with `key`, its live stream on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cdp import Browser
from test_dashboard_csp import WATCH


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


@asynccontextmanager
async def signed_in(port: int, key: str, lang: str = "en") -> AsyncIterator[Browser]:
    browser = Browser()
    try:
        await browser.open("about:blank")
        await browser.call(
            "Page.addScriptToEvaluateOnNewDocument",
            source=f"localStorage.setItem('hh-lang', {json.dumps(lang)});",
        )
        await browser.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
        await browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        await browser.wait_for(f"document.body?.dataset.ready === '1' && !{q('#login')}.hidden")
        await browser.js(f"{q('#key')}.value = {json.dumps(key)}")
        await browser.js(f"{q('#login-form button')}.click()")
        await browser.wait_for(f"{q('#live')}.classList.contains('on')")
        yield browser
        assert await browser.js("window.__csp") == [], "the page broke its policy"
    finally:
        await browser.close()
