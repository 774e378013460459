"""A minimal Chrome DevTools Protocol client for browser tests against headless Chromium.

Debian's `chromium` is driven directly over its DevTools websocket (no browser download, no
Node.js): start it, open a page, evaluate JavaScript, take screenshots.

Each `Browser` is a browser context of its own (Chromium's incognito profile: its own cookies,
storage, cache and tab; nothing shared between tests) in one Chromium kept running by the test
process: a Chromium of its own per test, started ahead at the previous one, took about a second
of the two cores at each dashboard test, and its page a fresh renderer's cold start. A Chromium
that died is started again at the next `Browser`.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

from services import free_port

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


class _Chromium:
    """A headless Chromium started with a profile of its own, not yet connected to."""

    def __init__(self) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise RuntimeError("chromium is not installed: run `make test` (it installs it)")
        self.port = free_port()
        # Chromium's helpers may still write to the profile while it goes
        self.profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--remote-debugging-port={self.port}",
                f"--user-data-dir={self.profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.profile.cleanup()

    def devtools(self) -> str:
        """The browser's DevTools websocket, once Chromium serves it."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            url = f"http://127.0.0.1:{self.port}/json/version"
            with contextlib.suppress(OSError), urllib.request.urlopen(url) as r:
                return str(json.load(r)["webSocketDebuggerUrl"])
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("chromium did not open its DevTools port")


_running: list[_Chromium] = []  # the test process's Chromium (one at most)


def _chromium() -> _Chromium:
    """The test process's Chromium: the running one, or a new one if none runs."""
    if _running and _running[0].proc.poll() is not None:
        _running.pop().stop()
    if not _running:
        _running.append(_Chromium())
    return _running[0]


@atexit.register
def _stop_chromium() -> None:
    while _running:
        _running.pop().stop()


class Browser:
    """A page in a browser context of its own (`open` makes both; `close` drops both)."""

    def __init__(self) -> None:
        self._chromium = _chromium()
        self.port = self._chromium.port
        self.proc = self._chromium.proc
        self._ids = itertools.count(1)
        self._ws: Any = None
        self._root: Any = None  # the browser's connection, which made the context
        self._context: str | None = None

    async def _root_call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._root.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._root.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    async def open(self, url: str) -> None:
        devtools = await asyncio.to_thread(self._chromium.devtools)
        self._root = await websockets.connect(devtools, max_size=None)
        made = await self._root_call("Target.createBrowserContext", disposeOnDetach=True)
        self._context = str(made["browserContextId"])
        target = await self._root_call(
            "Target.createTarget", url="about:blank", browserContextId=self._context
        )
        page = f"ws://127.0.0.1:{self.port}/devtools/page/{target['targetId']}"
        self._ws = await websockets.connect(page, max_size=None)
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                value = await self.js(expression)
                if value:
                    return value
            # a quick poll: a page's tests wait for it hundreds of times (0.2 s was ~10 % of them)
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._root is not None:
            with contextlib.suppress(Exception):  # (a Chromium that died: started again)
                if self._context is not None:
                    await self._root_call(
                        "Target.disposeBrowserContext", browserContextId=self._context
                    )
            await self._root.close()
