"""A minimal Chrome DevTools Protocol client for browser tests against headless Chromium.

Debian's `chromium` is driven directly over its DevTools websocket (no browser download, no
Node.js): start it, open a page, evaluate JavaScript, take screenshots.

Each `Browser` is a Chromium of its own (its own process and profile, nothing shared between
tests), but started ahead: taking one starts the next one's, so that the next test finds its
browser up instead of waiting a second for it (most of the dashboard tests' time was that).
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


_spare: list[_Chromium] = []  # the next Browser's (one at most), started at the last one


def _take() -> _Chromium:
    """A Chromium for a new Browser: the spare if it still runs, else a new one; and start the
    next one's spare."""
    chromium = _spare.pop() if _spare else None
    if chromium is None or chromium.proc.poll() is not None:
        if chromium is not None:
            chromium.profile.cleanup()
        chromium = _Chromium()
    _spare.append(_Chromium())
    return chromium


@atexit.register
def _stop_spare() -> None:
    while _spare:
        _spare.pop().stop()


class Browser:
    def __init__(self) -> None:
        self._chromium = _take()
        self.port = self._chromium.port
        self.proc = self._chromium.proc
        self._ids = itertools.count(1)
        self._ws: Any = None

    async def open(self, url: str) -> None:
        deadline = time.monotonic() + 20
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json") as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
                if targets:
                    break
            await asyncio.sleep(0.05)
        assert targets, "chromium did not open its DevTools port"
        self._ws = await websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=None)
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
        self._chromium.stop()
