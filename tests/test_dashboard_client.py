"""The dashboard in headless Chromium against a scripted stand-in for the hub's API (the real
`api/static`), for what the page does with what a real hub gives rarely or slowly: a browser
clock minutes off, a reading stamped in the future, a 401 or a hang during a resync, a burst of
events, gaps in a trend, 2,000 tiles. Its answers have the shapes of the real API's
(docs/api.md); the page against a real hub is in test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cdp import Browser
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from api.bulkack import RED_NEEDS_NOTE
from telemetry.alarmkinds import ALARM_KINDS

from services import free_port

STATIC = Path(__file__).resolve().parent.parent / "api" / "static"
ACTIONS = ["acknowledge", "shelve", "unshelve", "comment", "disposal"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sensor(sid: str, site: str = "face", **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "tenant": "t",
        "site": site,
        "device": "d",
        "kind": "methane",
        "unit": "%CH4",
        "location": "",
        "tag": "",
        "rule": "",
        "levels": [],
        "no_data_s": None,
        "report_on_change": False,
        "max_silent_s": None,
        **extra,
    }


def reading(sid: str, ts: int, value: float) -> dict[str, Any]:
    return {"sensor": sid, "ts": ts, "value": value, "quality": 0, "quality_name": "good"}


def alarm(aid: int, sid: str, *, overdue: bool = False, event_id: int = 0) -> dict[str, Any]:
    """An active, unacknowledged alarm of `sid` raised a minute ago (its one event numbered
    `event_id`, else aid * 10)."""
    ts = now_ms() - 60_000
    return {
        "id": aid,
        "tenant": "t",
        "site": "face",
        "device": "d",
        "sensor": sid,
        "location": "",
        "rule": "r",
        "side": "above",
        "level": 1,
        "level_name": "alarm",
        "tier": "orange",
        "peak_level": 1,
        "peak_tier": "orange",
        "state": "active",
        "isa_state": "unack",
        "acked": False,
        "shelved_until": None,
        "out_of_service": False,
        "suppressed": False,
        "value": 1.2,
        "raised_at": ts,
        "started_ts": ts,
        "disposal": "received",
        "disposal_due": None,
        "overdue": overdue,
        "action": "",
        "events": [
            {
                "id": event_id or aid * 10,
                "kind": "raised",
                "ts": ts,
                "arrival": ts,
                "level": 1,
                "level_name": "alarm",
                "tier": "orange",
                "value": 1.2,
                "actor": None,
                "comment": None,
                "isa_state": "unack",
            }
        ],
    }


@dataclass
class Key:
    """What the hub shows one API key."""

    sensors: list[dict[str, Any]] = field(default_factory=list)
    latest: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    revoked: bool = False
    role: str = "operator"
    tenants: list[str] | None = None  # None: every tenant
    actions: list[str] = field(default_factory=lambda: list(ACTIONS))  # `alarm_actions` of /me


READY = {"status": "ready", "cause": None, "reason": None, "since_ms": None}


@dataclass
class FakeHub:
    keys: dict[str, Key] = field(default_factory=dict)
    history_rows: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # path?query of each API request
    # scripted trouble for GET /api/v1/alarms: "401", "500", "hang" (once each), a delay in s
    alarms_trouble: list[str] = field(default_factory=list)
    alarms_delay_s: float = 0.0
    streams: list[asyncio.Queue[str | None]] = field(default_factory=list)
    port: int = 0
    acknowledged: list[dict[str, Any]] = field(
        default_factory=list
    )  # bulk acknowledgements' bodies
    disposed: list[dict[str, Any]] = field(
        default_factory=list
    )  # the bodies of POST /api/v1/alarms/disposal
    acked_one: list[tuple[int, Any]] = field(default_factory=list)  # (id, body) acknowledged
    reviewed: list[tuple[int, Any]] = field(default_factory=list)  # (id, body) of .../review
    red_asks: bool = False  # every alarm acknowledged alone needs a note (as if it were red)
    # the streams refused before one is taken: (the hub's reason, Retry-After s) each
    stream_refusals: list[tuple[str, int]] = field(default_factory=list)
    # the stream's `retry` (the hub's is 2 s): the page's first wait before connecting again
    retry_ms: int = 200
    vehicles: list[dict[str, Any]] = field(default_factory=list)  # every key's
    handover: dict[str, Any] = field(default_factory=dict)  # every key's
    # GET /api/v1/readiness (`api.readiness`): ready unless a test says otherwise
    readiness: dict[str, Any] = field(default_factory=lambda: dict(READY))

    async def push(self, kind: str, data: dict[str, Any]) -> None:
        """An event to every open stream."""
        for q in self.streams:
            await q.put(f"event: {kind}\ndata: {json.dumps(data)}\n\n")

    async def end_streams(self) -> None:
        for q in self.streams:
            await q.put(None)

    def count(self, prefix: str) -> int:
        return sum(c.startswith(prefix) for c in self.calls)

    def app(self) -> FastAPI:
        app = FastAPI()
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        def who(request: Request) -> Key | None:
            found = self.keys.get(request.headers.get("authorization", "").removeprefix("Bearer "))
            return None if found is None or found.revoked else found

        @app.middleware("http")
        async def log_and_auth(request: Request, call_next: Any) -> Response:
            path = request.url.path
            if path.startswith("/api/"):
                self.calls.append(f"{path}?{request.url.query}")
                if who(request) is None:
                    return JSONResponse({"detail": "unauthorized"}, status_code=401)
            response: Response = await call_next(request)
            return response

        @app.get("/")
        def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

        @app.get("/api/v1/me")
        def me(request: Request) -> dict[str, Any]:
            key = who(request)
            return {
                "name": "k",
                "role": key.role,  # type: ignore[union-attr]
                "tenants": key.tenants,  # type: ignore[union-attr]
                "expires_ms": None,
                "alarm_actions": key.actions,  # type: ignore[union-attr]
            }

        @app.get("/api/v1/sensors")
        def sensors(request: Request) -> list[dict[str, Any]]:
            return who(request).sensors  # type: ignore[union-attr]

        @app.get("/api/v1/latest")
        def latest(request: Request) -> list[dict[str, Any]]:
            return who(request).latest  # type: ignore[union-attr]

        @app.get("/api/v1/alarms")
        async def alarms(request: Request) -> Any:
            key = who(request)
            trouble = self.alarms_trouble.pop(0) if self.alarms_trouble else ""
            if trouble == "hang":
                await asyncio.sleep(3600)
            if trouble in ("401", "500"):
                return JSONResponse({"detail": "scripted"}, status_code=int(trouble))
            await asyncio.sleep(self.alarms_delay_s)
            one = request.query_params.get("tenant")  # as the hub narrows the list
            return [a for a in key.alarms if one is None or a["tenant"] == one]  # type: ignore[union-attr]

        @app.get("/api/v1/alarms/{aid}")
        def one_alarm(request: Request, aid: int) -> Any:
            for a in who(request).alarms:  # type: ignore[union-attr]
                if a["id"] == aid:
                    return a
            return JSONResponse({"detail": "not found"}, status_code=404)

        @app.post("/api/v1/alarms/acknowledge")
        async def acknowledge_many(request: Request) -> dict[str, Any]:
            """As the hub answers (docs/alarms.md): per id, in the order given."""
            body = await request.json()
            self.acknowledged.append(body)
            mine = {a["id"]: a for a in who(request).alarms}  # type: ignore[union-attr]
            results = []
            for aid in body["ids"]:
                a = mine.get(aid)
                if a is None or a["acked"]:
                    what = "not_found" if a is None else "already"
                    results.append({"id": aid, "result": what, "reason": None, "isa_state": None})
                    continue
                a.update(acked=True, isa_state="ack" if a["state"] == "active" else "normal")
                results.append(
                    {
                        "id": aid,
                        "result": "acknowledged",
                        "reason": None,
                        "isa_state": a["isa_state"],
                    }
                )
            counts = dict.fromkeys(("acknowledged", "already", "not_found", "refused"), 0)
            for r in results:
                counts[r["result"]] += 1
            return {"counts": counts, "results": results}

        @app.post("/api/v1/alarms/disposal")
        async def dispose_many(request: Request) -> dict[str, Any]:
            """As the hub answers (docs/alarms.md): per id, in the order given; close refused
            while the alarm is active."""
            body = await request.json()
            self.disposed.append(body)
            mine = {a["id"]: a for a in who(request).alarms}  # type: ignore[union-attr]
            after = {"verify": "verified", "dispose": "disposed", "close": "closed"}[body["step"]]
            before = {"verified": "received", "disposed": "verified", "closed": "disposed"}[after]
            results = []
            for aid in body["ids"]:
                a = mine.get(aid)
                res: dict[str, Any] = {"id": aid, "reason": None, "disposal": None}
                res["isa_state"] = None if a is None else a["isa_state"]
                if a is None:
                    res["result"] = "not_found"
                elif a["disposal"] != before:
                    res.update(result="already", disposal=a["disposal"])
                elif body["step"] == "close" and a["state"] == "active":
                    why = "cannot close: the alarm is still active"
                    res.update(result="refused", reason=why, disposal=a["disposal"])
                else:
                    a["disposal"] = after
                    res.update(result="done", disposal=after)
                results.append(res)
            counts = dict.fromkeys(("done", "already", "not_found", "refused"), 0)
            for r in results:
                counts[r["result"]] += 1
            return {"counts": counts, "results": results}

        @app.post("/api/v1/alarms/{aid}/acknowledge")
        async def acknowledge(request: Request, aid: int) -> Any:
            """As the hub answers: a red one (its peak, or every one when `red_asks`) only with
            a note (422 with the hub's reason)."""
            body = json.loads(await request.body() or b"null")
            self.acked_one.append((aid, body))
            for a in who(request).alarms:  # type: ignore[union-attr]
                if a["id"] == aid:
                    note = (body or {}).get("note", "")
                    if (a["peak_tier"] == "red" or self.red_asks) and not note.strip():
                        return JSONResponse({"detail": RED_NEEDS_NOTE}, status_code=422)
                    key = who(request)
                    centre = key.role in ("admin", "operator") and key.tenants is None  # type: ignore[union-attr]
                    if centre and "centre_acked" in a:  # the centre's, apart (a hub of now)
                        a.update(centre_acked=True)
                    else:
                        a.update(acked=True, isa_state="ack")
                    return a
            return JSONResponse({"detail": "not found"}, status_code=404)

        @app.post("/api/v1/alarms/{aid}/disposal")
        async def disposal(request: Request, aid: int) -> Any:
            """Close is refused while the alarm is active, as the hub refuses it."""
            body = await request.json()
            for a in who(request).alarms:  # type: ignore[union-attr]
                if a["id"] == aid:
                    if body["step"] == "close" and a["state"] == "active":
                        detail = "cannot close: the alarm is still active"
                        return JSONResponse({"detail": detail}, status_code=409)
                    return a
            return JSONResponse({"detail": "not found"}, status_code=404)

        @app.post("/api/v1/alarms/{aid}/review")
        async def review(request: Request, aid: int) -> Any:
            """As the hub answers: approve closes, return goes back to verified, each journaled
            with the centre's note."""
            body = await request.json()
            self.reviewed.append((aid, body))
            for a in who(request).alarms:  # type: ignore[union-attr]
                if a["id"] == aid:
                    kind = "approved" if body["decision"] == "approve" else "returned"
                    a["disposal"] = "closed" if kind == "approved" else "verified"
                    last = a["events"][-1]
                    a["events"].append(
                        {
                            **last,
                            "id": last["id"] + 1,
                            "kind": kind,
                            "actor": "k",
                            "comment": body["note"],
                        }
                    )
                    return a
            return JSONResponse({"detail": "not found"}, status_code=404)

        @app.get("/api/v1/sensors/{sid}/history")
        def history(sid: str) -> list[dict[str, Any]]:
            return self.history_rows

        @app.get("/api/v1/vehicles")
        def vehicles() -> list[Any]:
            return self.vehicles

        @app.get("/api/v1/readiness")
        def readiness() -> dict[str, Any]:
            return self.readiness

        @app.get("/api/v1/handover")
        def handover() -> dict[str, Any]:
            return self.handover

        @app.get("/api/v1/vehicles/{vid}/track")
        def track(vid: str) -> list[Any]:
            return []

        @app.get("/api/v1/geofences")
        def geofences() -> list[Any]:
            return []

        @app.get("/api/v1/stream", response_model=None)
        async def stream(request: Request) -> StreamingResponse | JSONResponse:
            if self.stream_refusals:  # as the hub refuses one stream too many (429)
                why, after = self.stream_refusals.pop(0)
                headers = {"Retry-After": str(after)}
                return JSONResponse({"detail": why}, status_code=429, headers=headers)
            q: asyncio.Queue[str | None] = asyncio.Queue()
            self.streams.append(q)

            async def events() -> AsyncIterator[str]:
                try:
                    yield f"retry: {self.retry_ms}\n\n"
                    while (block := await q.get()) is not None:
                        yield block
                finally:
                    self.streams.remove(q)

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


@contextlib.asynccontextmanager
async def serving(hub: FakeHub) -> AsyncIterator[FakeHub]:
    hub.port = free_port()
    config = uvicorn.Config(
        hub.app(), host="127.0.0.1", port=hub.port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="fake-hub")
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield hub
    finally:
        await hub.end_streams()
        server.should_exit = True
        await task


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def tile(sid: str) -> str:
    return q(f".tile[data-sensor='{sid}']")


def row(aid: int, inner: str = "") -> str:
    return q(f"tr.alarm[data-alarm='{aid}'] {inner}".strip())


@contextlib.asynccontextmanager
async def page(
    hub: FakeHub, key: str, skew_ms: int = 0, timeouts_ms: int | None = None, script: str = ""
) -> AsyncIterator[Browser]:
    """A browser logged in to `hub` with `key`, its clock `skew_ms` off the hub's; with
    `timeouts_ms`, the page's 20 s request timeouts last that long (the suite's time); `script`
    runs in the page before its own."""
    browser = Browser()
    try:
        await browser.open("about:blank")
        if script:
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=script)
        if skew_ms:
            await browser.call(
                "Page.addScriptToEvaluateOnNewDocument",
                source=f"const __now = Date.now.bind(Date); Date.now = () => __now() + {skew_ms};",
            )
        if timeouts_ms is not None:
            await browser.call(
                "Page.addScriptToEvaluateOnNewDocument",
                source=(
                    "const __to = AbortSignal.timeout.bind(AbortSignal);"
                    f"AbortSignal.timeout = (ms) => __to(ms === 20000 ? {timeouts_ms} : ms);"
                    "const __st = window.setTimeout.bind(window);"
                    "window.setTimeout = (f, ms, ...a) =>"
                    f" __st(f, ms === 20000 ? {timeouts_ms} : ms, ...a);"
                ),
            )
        await browser.call("Page.navigate", url=f"http://127.0.0.1:{hub.port}/")
        await login(browser, key)
        yield browser
    finally:
        await browser.close()


async def login(browser: Browser, key: str, live: bool = True) -> None:
    await browser.wait_for(f"document.body?.dataset.ready === '1' && !{q('#login')}.hidden")
    await browser.js(f"{q('#key')}.value = {json.dumps(key)}")
    await browser.js(f"{q('#login-form button')}.click()")
    await browser.wait_for(f"!{q('#app')}.hidden")
    if live:
        await browser.wait_for(f"{q('#live')}.classList.contains('on')", 10)


@pytest.mark.parametrize("skew_s", [400, -600])
async def test_age_and_the_trend_go_by_the_hubs_clock_not_the_browsers(skew_s):
    """A browser 400 s ahead called every live reading stale; 600 s behind, a reading 10 min
    old was not, and the trend ended before the hub's data."""
    now = now_ms()
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[sensor("fresh"), sensor("old")],
                latest=[reading("fresh", now, 0.3), reading("old", now - 400_000, 0.3)],
            )
        }
    )
    async with serving(hub), page(hub, "k", skew_s * 1000) as browser:
        assert await browser.js(f"{tile('fresh')}.dataset.quality") == "good"
        assert await browser.js(f"{tile('old')}.dataset.quality") == "stale"
        await browser.js(f"{tile('fresh')}.click()")
        await browser.wait_for(f"{q('#trend')}.dataset.end", 5)
        end = int(await browser.js(f"{q('#trend')}.dataset.end"))
        assert abs(end - now_ms()) < 5000


async def test_a_reading_from_the_future_does_not_hold_its_tile():
    """The hub takes readings up to 5 min ahead (a device's clock wrong): the readings of the
    present that follow one of those are shown, not dropped as older; an older reading of the
    past (a backlog) still does not take the tile back."""
    now = now_ms()
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")], latest=[reading("s", now, 0.3)])})
    async with serving(hub), page(hub, "k") as browser:
        await hub.push("reading", reading("s", now_ms() + 200_000, 0.9))
        await browser.wait_for(f"{tile('s')}.innerText.includes('0.9')", 5)
        await hub.push("reading", reading("s", now_ms(), 0.5))
        await browser.wait_for(f"{tile('s')}.innerText.includes('0.5')", 5)
        await hub.push("reading", reading("s", now_ms() - 60_000, 0.7))
        await hub.push("reading", reading("s", now_ms() + 1000, 0.4))
        await browser.wait_for(f"{tile('s')}.innerText.includes('0.4')", 5)


async def test_a_sensor_reporting_on_change_is_stale_after_its_devices_silence():
    """A device reporting on change sends nothing while its reading holds (up to
    `max_silent_s`): its quiet sensor is not stale after the 5 min of a polled one."""
    old = now_ms() - 400_000
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[
                    sensor("polled"),
                    sensor("quiet", report_on_change=True, max_silent_s=600),
                    sensor("silent", report_on_change=True, max_silent_s=300),
                ],
                latest=[reading(s, old, 0.3) for s in ("polled", "quiet", "silent")],
            )
        }
    )
    async with serving(hub), page(hub, "k") as browser:
        quality = await browser.js(
            "Object.fromEntries([...document.querySelectorAll('.tile')]"
            ".map((t) => [t.dataset.sensor, t.dataset.quality]))"
        )
        assert quality == {"polled": "stale", "quiet": "good", "silent": "stale"}


async def test_a_reading_rewrites_its_own_tile_only():
    """2,000 tiles rebuilt, each with a time formatted in CST, on every reading kept the page
    busy: a reading writes its own tile, the others stay the same elements, untouched."""
    n = 2000
    now = now_ms()
    ids = [f"s{i:04d}" for i in range(n)]
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[sensor(s, f"site{i // 200}") for i, s in enumerate(ids)],
                latest=[reading(s, now, 0.3) for s in ids],
            )
        }
    )
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"document.querySelectorAll('.tile').length === {n}")
        await browser.js(
            """(() => { window.__tiles = [...document.querySelectorAll('.tile')];
              window.__changed = 0;
              new MutationObserver((m) => { window.__changed += m.length; })
                .observe(document.querySelector('#sites'),
                         {subtree: true, childList: true, attributes: true, characterData: true});
            })()"""
        )
        await hub.push("reading", reading("s0007", now_ms(), 0.8))
        await browser.wait_for(f"{tile('s0007')}.innerText.includes('0.8')", 5)
        await asyncio.sleep(0.5)
        same = await browser.js(
            "window.__tiles.every((t, i) => t === document.querySelectorAll('.tile')[i])"
        )
        assert same
        # the tile's class, quality, value and title: a handful of changes, not 2,000 tiles
        assert await browser.js("window.__changed") < 20
        title = await browser.js(f"{tile('s0007')}.title")
        assert re.search(r"0\.8 %CH4 \d\d:\d\d:\d\d$", title), title


async def test_a_live_trend_is_read_once_a_window_in_one_request():
    """A trend ending now read min and max (two requests) on every reading of its sensor, at
    most every 2 s, whatever its span: now one request (`minmax`) at most once a window of its
    span (3 s at 15 min; none in 8 s at 24 h, whose windows are about 5 min)."""
    now = now_ms()
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")], latest=[reading("s", now, 0.3)])})
    hub.history_rows = [{"ts": now - 60_000, "min": 0.1, "max": 0.4}]
    async with serving(hub), page(hub, "k") as browser:
        await browser.js(f"{tile('s')}.click()")
        await browser.wait_for(f"{q('#trend')}.dataset.points === '1'", 5)

        async def readings_for(seconds: float) -> int:
            before = hub.count("/api/v1/sensors/s/history")
            for _ in range(int(seconds * 5)):
                await hub.push("reading", reading("s", now_ms(), 0.3))
                await asyncio.sleep(0.2)
            return hub.count("/api/v1/sensors/s/history") - before

        assert await readings_for(8) <= 3
        assert all(
            "aggregate=minmax" in c for c in hub.calls if c.startswith("/api/v1/sensors/s/history")
        )
        day = q('#trend-spans button[data-span="86400000"]')
        await browser.js(f"{day}.click()")
        await browser.wait_for(f"{day}.getAttribute('aria-pressed') === 'true'", 5)
        assert await readings_for(8) == 0


async def test_the_trend_band_is_broken_where_windows_have_no_measurement():
    now = now_ms()
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")], latest=[reading("s", now, 0.3)])})
    async with serving(hub), page(hub, "k") as browser:
        every = 3000  # 15 min / 300
        first = (now - 900_000) // every * every + every
        # the first and the last third of the view have windows, the middle third none
        hub.history_rows = [
            {"ts": ts, "min": 0.2, "max": 0.8}
            for ts in range(first, now, every)
            if not (first + 300_000 <= ts < first + 600_000)
        ]
        await browser.js(f"{tile('s')}.click()")
        await browser.wait_for(f"Number({q('#trend')}.dataset.points) > 0", 5)
        assert await browser.js(f"{q('#trend')}.dataset.segments") == "2"
        # no ink across the gap's middle, between the axis labels
        ink = await browser.js(
            """(() => { const c = document.querySelector('#trend'), g = c.getContext('2d');
              const d = g.getImageData(c.width / 2, 20, 1, c.height - 40).data;
              let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"""
        )
        assert ink == 0
        # a device polled more slowly than the windows leaves every other one empty: no gap
        hub.history_rows = [
            {"ts": ts, "min": 0.2, "max": 0.8} for ts in range(first, now, 2 * every)
        ]
        await browser.js(f"{tile('s')}.click()")
        await browser.wait_for(f"{q('#trend')}.dataset.segments === '1'", 5)


async def test_a_sign_out_leaves_nothing_of_the_key_for_the_next():
    """A key revoked: the page goes back to the login, and the next key sees none of the first
    key's tiles, alarms or trend while its own are read."""
    now = now_ms()
    hub = FakeHub(
        keys={
            "k1": Key(
                sensors=[sensor("mine-1")],
                latest=[reading("mine-1", now, 0.3)],
                alarms=[alarm(1, "mine-1")],
            ),
            "k2": Key(sensors=[sensor("theirs")], latest=[reading("theirs", now, 0.2)]),
        }
    )
    async with serving(hub), page(hub, "k1") as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        await browser.js(f"{tile('mine-1')}.click()")
        await browser.wait_for(f"{q('#trend-name')}.textContent === 'mine-1'", 5)
        hub.keys["k1"].revoked = True
        await hub.end_streams()
        await browser.wait_for(f"!{q('#login')}.hidden", 10)
        hub.alarms_delay_s = 3  # the next key's resync takes a while
        await login(browser, "k2", live=False)
        seen = await browser.js(
            f"""({{tiles: document.querySelectorAll('.tile').length,
                  alarms: document.querySelectorAll('#alarms tbody tr').length,
                  trend: {q("#trend-name")}.textContent,
                  drawn: {q("#trend")}.dataset.sensor ?? null}})"""
        )
        assert seen == {"tiles": 0, "alarms": 0, "trend": "", "drawn": None}
        await browser.wait_for(f"!!{tile('theirs')}", 10)
        assert await browser.js("document.querySelectorAll('.tile').length") == 1


async def test_a_401_during_the_resync_signs_out():
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")])})
    async with serving(hub), page(hub, "k") as browser:
        hub.alarms_trouble = ["401"]
        await hub.end_streams()  # the page connects again and reads everything afresh
        await browser.wait_for(f"!{q('#login')}.hidden", 10)
        assert "no longer valid" in await browser.js(f"{q('#login-error')}.textContent") or (
            "已失效" in await browser.js(f"{q('#login-error')}.textContent")
        )


async def test_a_stream_that_ends_is_taken_again_after_the_streams_retry():
    """The page waited a fixed 2 s before connecting again, whatever the stream's `retry` said
    (the hub's is 2 s; a browser's EventSource waits it): the page waits that `retry` too."""
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")])}, retry_ms=100)
    async with serving(hub), page(hub, "k") as browser:
        taken = hub.count("/api/v1/stream")
        ended = time.monotonic()
        await hub.end_streams()
        while hub.count("/api/v1/stream") == taken:
            assert time.monotonic() - ended < 1.5, "not asked again within the stream's retry"
            await asyncio.sleep(0.02)
        await browser.wait_for(f"{q('#live')}.classList.contains('on')", 5)


@pytest.mark.slow
async def test_a_resync_that_hangs_times_out_and_the_page_goes_live_again():
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")])})
    async with serving(hub), page(hub, "k", timeouts_ms=3000) as browser:
        hub.alarms_trouble = ["hang"]
        await hub.end_streams()
        await browser.wait_for(f"{q('#live')}.classList.contains('off')", 5)
        await browser.wait_for(f"{q('#live')}.classList.contains('on')", 20)


async def test_events_held_during_a_resync_are_bounded_and_what_was_dropped_is_read_again():
    now = now_ms()
    hub = FakeHub(keys={"k": Key(sensors=[sensor("s")], latest=[reading("s", now, 0.3)])})
    async with serving(hub), page(hub, "k") as browser:
        latest_before = hub.count("/api/v1/latest")
        alarms_before = hub.count("/api/v1/alarms")
        hub.alarms_delay_s = 4
        await hub.end_streams()
        await browser.wait_for(f"{q('#live')}.classList.contains('off')", 5)
        # reconnected, its resync under way: the stream open again and the alarms asked for (a
        # fixed 2.5 s sleep missed it on a loaded machine)
        end = time.monotonic() + 10
        while not (hub.streams and hub.count("/api/v1/alarms") > alarms_before):
            assert time.monotonic() < end, "the page did not reconnect"
            await asyncio.sleep(0.05)
        for k in range(6000):  # more than the page holds
            await hub.push("reading", reading("s", now + k, 0.5))
        await browser.wait_for(f"{q('#live')}.classList.contains('on')", 15)
        # the oldest events went, and the latest readings were read again after
        await asyncio.sleep(1)
        assert hub.count("/api/v1/latest") - latest_before == 2


async def test_rows_do_not_move_under_the_pointer():
    """An alarm falling overdue sorts first: not while the pointer is over the list (a click
    meant for one alarm's button would hit another's); its buttons say which alarm."""
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=[alarm(1, "a"), alarm(2, "b")])}
    )
    async with serving(hub), page(hub, "k") as browser:
        order = "[...document.querySelectorAll('tr.alarm')].map((r) => r.dataset.alarm)"
        await browser.wait_for(f"{order}.length === 2", 5)
        assert await browser.js(order) == ["2", "1"]
        box = await browser.js(
            f"(() => {{ const r = {row(2)}.getBoundingClientRect();"
            " return [r.left + 20, r.top + r.height / 2]; })()"
        )
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        hub.keys["k"].alarms[0] = alarm(1, "a", overdue=True, event_id=99)
        await hub.push(
            "alarm",
            {
                "alarm_id": 1,
                "event_id": 99,
                "kind": "overdue",
                "sensor": "a",
                "isa_state": "unack",
                "disposal": "received",
            },
        )
        await browser.wait_for(f"!!{row(1, '.overdue')}", 5)
        assert await browser.js(order) == ["2", "1"]
        label = await browser.js(f"{row(1, 'button')}.getAttribute('aria-label')")
        assert "a #1" in label
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=1, y=990)
        await browser.wait_for(f"{order}.join() === '1,2'", 5)


async def test_a_centres_rows_and_details_name_the_enterprise_and_site():
    """A city's centre cannot tell enterprises apart by sensor ids: its rows say whose alarm it
    is and where, by name (by id where none is configured); an enterprise's own key is not told
    its own name on every row."""
    named = {**alarm(1, "a"), "tenant_name": "北方煤业", "site_name": "1301 综采工作面"}
    bare = {**alarm(2, "b"), "tenant": "acme-chem", "site": "vehicles"}
    bare.update(tenant_name="", site_name="")
    hub = FakeHub(
        keys={
            "centre": Key(sensors=[sensor("a"), sensor("b")], alarms=[named, bare]),
            "firm": Key(sensors=[sensor("a")], alarms=[named], role="enterprise", tenants=["t"]),
        }
    )
    where = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] .where`)?.textContent"
    async with serving(hub):
        async with page(hub, "centre") as browser:
            await browser.wait_for(f"!!{row(2, '.where')}", 5)
            assert await browser.js(f"({where})(1)") == "北方煤业 · 1301 综采工作面"
            assert await browser.js(f"({where})(2)") == "acme-chem · vehicles"
            await browser.js(f"{row(1)}.click()")
            await browser.wait_for(f"!!{q('tr.extra .facts')}", 5)
            facts = await browser.js(f"{q('tr.extra .facts')}.textContent")
            assert "北方煤业 (t)" in facts and "1301 综采工作面 (face)" in facts
        async with page(hub, "firm") as browser:
            await browser.wait_for(f"!!{row(1)}", 5)
            assert await browser.js(f"({where})(1)") is None
            await browser.js(f"{row(1)}.click()")
            await browser.wait_for(f"!!{q('tr.extra .facts')}", 5)
            facts = await browser.js(f"{q('tr.extra .facts')}.textContent")
            assert "北方煤业" not in facts and "1301 综采工作面 (face)" in facts
        # a vehicle's alarm is of 车辆 in Chinese, not of "vehicles" (helper-240)
        async with page(hub, "centre", script=ZH) as browser:
            await browser.wait_for(f"!!{row(2, '.where')}", 5)
            assert await browser.js(f"({where})(2)") == "acme-chem · 车辆"
            await browser.js(f"{row(2)}.click()")
            await browser.wait_for(f"!!{q('tr.extra .facts')}", 5)
            facts = await browser.js(f"{q('tr.extra .facts')}.textContent")
            assert "车辆" in facts and "vehicles" not in facts, facts


def shaped(aid: int, sid: str, tier: str = "orange", **extra: Any) -> dict[str, Any]:
    """An alarm of `sid` at `tier`; `extra` sets its state (active unacknowledged by default)."""
    return {**alarm(aid, sid), "tier": tier, "peak_tier": tier, **extra}


RECOVERED = {"state": "cleared", "isa_state": "normal", "acked": True}
ORDER = "[...document.querySelectorAll('tr.alarm')].map((r) => Number(r.dataset.alarm))"


async def test_a_new_alarm_while_the_pointer_rests_on_the_list_is_told_at_the_top():
    """A night dispatcher's pointer rested on the list: new alarms went to its end, 3,300 px
    down, unseen. The rows still do not move under the pointer, and a banner over the list
    says how many came (in the colour of the highest tier); a click puts them at the top."""
    old = [shaped(i, "a", "blue") for i in range(1, 11)]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=old)})
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"{ORDER}.length === 10", 5)
        box = await browser.js(
            f"(() => {{ const r = {row(5)}.getBoundingClientRect();"
            " return [r.left + 20, r.top + r.height / 2]; })()"
        )
        await browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        for aid, tier in ((11, "yellow"), (12, "red")):
            hub.keys["k"].alarms.append(shaped(aid, "b", tier))
            await hub.push("alarm", {"alarm_id": aid, "event_id": aid * 10, "kind": "raised"})
        banner = q("#alarms-new")
        await browser.wait_for(f"!{banner}.hidden && {banner}.textContent.includes('2')", 5)
        assert await browser.js(f"{banner}.classList.contains('tier-red')")
        assert await browser.js(ORDER) == list(range(10, 0, -1))  # nothing moved, none added
        top = await browser.js(f"{banner}.getBoundingClientRect().top")
        assert 0 <= top < 100
        await browser.js(f"{banner}.click()")
        await browser.wait_for(f"{ORDER}.join() === '12,11,10,9,8,7,6,5,4,3,2,1'", 5)
        assert await browser.js(f"{banner}.hidden")


async def test_the_list_puts_what_needs_the_operator_now_first_and_never_cuts_it():
    """An old recovered, acknowledged alarm past its disposal deadline sorted above a new red
    one, and 100 such rows hid every active alarm: those waiting for an acknowledgement come
    first, by the tier they reached (a red one returned unacknowledged above an active blue
    one, helper-240), active before returned within a tier, then newest; then the active
    acknowledged by tier, then the rest, overdue first."""
    alarms = [
        shaped(1, "a", "red"),  # the oldest red one waiting: after the newer red
        shaped(2, "a", "orange", **RECOVERED, overdue=True),
        shaped(3, "a", "yellow", isa_state="ack", acked=True),
        shaped(4, "a", "red", isa_state="ack", acked=True),
        shaped(5, "a", "blue"),
        shaped(6, "a", "orange", **RECOVERED),
        shaped(7, "a", "red"),
        # returned, still waiting for its acknowledgement: right after the active waiting ones,
        # never cut (helper-108: five sat below 100 acknowledged overdue rows, "17 more")
        shaped(8, "a", "yellow", state="cleared", isa_state="rtn_unack"),
        # a red one returned unacknowledged: with the red ones, after the active reds
        shaped(9, "a", "red", state="cleared", isa_state="rtn_unack"),
    ]
    alarms += [shaped(i, "a", "red", **RECOVERED, overdue=True) for i in range(100, 220)]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a")], alarms=alarms)})
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"{ORDER}.length === 100", 5)
        order = await browser.js(ORDER)
        assert order[:8] == [7, 1, 9, 8, 5, 4, 3, 219]
        more = q("#alarms-more")
        assert not await browser.js(f"{more}.hidden")
        assert "29" in await browser.js(f"{more}.textContent")
        await browser.js(f"{more}.click()")
        await browser.wait_for(f"{ORDER}.length === 129", 5)
        assert (await browser.js(ORDER))[-2:] == [2, 6]  # the overdue before the rest


# every oscillator the page starts, with its pitch (WebAudio: the alarm's beeps)
BEEPS = """window.__beeps = [];
const __start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...a) {
  window.__beeps.push(this.frequency.value); return __start.apply(this, a); };"""


def title(n: int) -> str:
    return rf"^\({n}\) (报警|Alarms) · hazardhub$"


async def test_orange_and_red_alarms_waiting_sound_and_show_in_the_title_until_acknowledged():
    """A red alarm came on a silent page that said nothing in its tab. An active unacknowledged
    orange alarm beeps, a red one more insistently (higher, three beeps every 2 s), and the title
    counts them; a yellow or acknowledged one does not. The mute stops the sound (remembered),
    not the title; all acknowledged, the sound stops."""
    orange = shaped(1, "a", "orange")
    quiet = [shaped(2, "a", "yellow"), shaped(3, "a", "red", isa_state="ack", acked=True)]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=[orange, *quiet])})
    async with serving(hub), page(hub, "k", script=BEEPS) as browser:
        await browser.wait_for("window.__beeps.length > 0", 5)
        assert set(await browser.js("window.__beeps")) == {800}
        assert re.match(title(1), await browser.js("document.title"))
        hub.keys["k"].alarms.append(shaped(4, "b", "red"))
        await hub.push("alarm", {"alarm_id": 4, "event_id": 40, "kind": "raised"})
        await browser.wait_for("window.__beeps.filter((f) => f === 1100).length >= 6", 5)
        assert re.match(title(2), await browser.js("document.title"))
        mute = q("#mute")
        await browser.js(f"{mute}.click()")
        assert await browser.js("localStorage.getItem('hh-mute')") == "1"
        assert await browser.js(f"{mute}.getAttribute('aria-pressed')") == "true"
        heard = await browser.js("window.__beeps.length")
        await asyncio.sleep(2.2)  # a red pattern's period and more
        assert await browser.js("window.__beeps.length") == heard
        await browser.js(f"{mute}.click()")  # sound again, at once
        await browser.wait_for(f"window.__beeps.length > {heard}", 2)
        for a in hub.keys["k"].alarms[0], hub.keys["k"].alarms[3]:  # both acknowledged
            a.update(isa_state="ack", acked=True)
            ack = {"kind": "acknowledged", "isa_state": "ack", "disposal": "received"}
            await hub.push("alarm", {"alarm_id": a["id"], "event_id": a["id"] * 10 + 1, **ack})
        await browser.wait_for("document.title === 'hazardhub'", 5)
        heard = await browser.js("window.__beeps.length")
        await asyncio.sleep(2.2)  # a red pattern's period and more
        assert await browser.js("window.__beeps.length") == heard


async def test_an_alarm_whose_read_failed_is_read_again_not_lost():
    """A new alarm's own read that failed (its answer lost, a 404 of a hub that had not yet
    committed it) was swallowed: the alarm never showed, nor counted, until a reload. The page
    compares the alarms waiting with the hub's and takes the one missing."""
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a")], alarms=[shaped(1, "a", "red")])})
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"{ORDER}.join() === '1'", 5)
        await hub.push("alarm", {"alarm_id": 2, "event_id": 20, "kind": "raised"})
        while not hub.count("/api/v1/alarms/2"):  # asked, and not found
            await asyncio.sleep(0.05)
        hub.keys["k"].alarms.append(shaped(2, "a", "red"))
        await browser.wait_for(f"{ORDER}.join() === '2,1'", 8)
        assert "2" in await browser.js(f"{q('#unack-count')}.textContent")
        assert any("centre_ack=false" in c for c in hub.calls), hub.calls


async def test_a_red_alarm_returned_unacknowledged_keeps_calling_gently():
    """A red alarm that returned to normal before anyone acknowledged it went quiet: it still
    waits (ISA-18.2), so it sounds orange's gentler pattern and counts in the title until it is
    acknowledged; a returned orange one stays quiet."""
    back = shaped(1, "a", "red", state="cleared", isa_state="rtn_unack")
    calm = shaped(2, "a", "orange", state="cleared", isa_state="rtn_unack")
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a")], alarms=[back, calm])})
    async with serving(hub), page(hub, "k", script=BEEPS) as browser:
        await browser.wait_for("window.__beeps.length > 0", 5)
        assert set(await browser.js("window.__beeps")) == {800}
        assert re.match(title(1), await browser.js("document.title"))
        back.update(isa_state="normal", acked=True, centre_acked=True)
        ack = {"kind": "acknowledged", "isa_state": "normal", "disposal": "received"}
        await hub.push("alarm", {"alarm_id": 1, "event_id": 11, **ack})
        await browser.wait_for("document.title === 'hazardhub'", 5)


async def test_the_centre_hears_and_acknowledges_a_red_alarm_the_enterprise_acknowledged():
    """One acknowledgement served both: the enterprise's click silenced the city duty officer's
    page. The centre's key (operator of every tenant) follows `centre_acked`: a red alarm the
    enterprise acknowledged still sounds and counts in its title, with its Acknowledge button,
    until the centre acknowledges it; the enterprise's own page is quiet and has no button."""
    seen = shaped(1, "a", "red", isa_state="ack", acked=True, centre_acked=False)
    hub = FakeHub(
        keys={
            "c": Key(sensors=[sensor("a")], alarms=[seen]),
            "e": Key(sensors=[sensor("a")], alarms=[dict(seen)], role="enterprise", tenants=["t"]),
        }
    )
    async with serving(hub), page(hub, "e", script=BEEPS) as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        assert await browser.js("document.title") == "hazardhub"
        assert not await browser.js(f"!!{row(1, 'button[data-act=ack]')}")
        assert await browser.js(f"{row(1, 'span.isa')}.dataset.isa") == "ack"
        assert not await browser.js(f"!!{row(1, 'div.site-isa')}")
    badge = row(1, "span.isa")
    async with serving(hub), page(hub, "c", script=BEEPS) as browser:
        await browser.wait_for("window.__beeps.length > 0", 5)
        assert set(await browser.js("window.__beeps")) == {1100}
        assert re.match(title(1), await browser.js("document.title"))
        # the badge is the centre's own state (it showed the enterprise's: "ack", and after the
        # centre's acknowledgement of a returned one a red "rtn unack" with nothing to click,
        # helper-133); the enterprise's beside it
        assert await browser.js(f"{badge}.dataset.isa") == "unack"
        assert await browser.js(f"{row(1, 'div.site-isa')}.dataset.isa") == "ack"
        await browser.wait_for(f"!!{row(1, 'button[data-act=ack]')}", 5)
        await browser.js(f"{row(1, 'button[data-act=ack]')}.click()")
        form = "tr.extra[data-for='1'] form.act-form[data-form=ack]"
        await browser.wait_for(f"!!{q(form)}", 5)  # red: the centre gives a note too
        await browser.js(f"{q(form + ' [name=note]')}.value = '已电话核实 phoned the site'")
        await browser.js(f"{q(form + ' button[type=submit]')}.click()")
        await browser.wait_for("document.title === 'hazardhub'", 5)
        assert hub.keys["c"].alarms[0]["centre_acked"] is True
        assert not await browser.js(f"!!{row(1, 'button[data-act=ack]')}")
        await browser.wait_for(f"{badge}.dataset.isa === 'ack'", 5)
        assert not await browser.js(f"!!{row(1, 'div.site-isa')}")  # the same on both sides


async def test_a_sensor_out_of_service_says_so_on_its_tile():
    """A tile out of service looked like any other: a dispatcher took its value, which raises no
    alarm, for a watched one. It says 停用 (who, why, since in its tooltip), and a sensor taken
    out of service meanwhile (its alarm's event) follows. (And a tile is headed by the sensor's
    tag and location, its id beneath: a heading `face1301-ch4-t1` told the dispatcher little.)"""
    now = now_ms()
    out = {
        "out_of_service": True,
        "out_of_service_by": "centre-op",
        "out_of_service_reason": "recalibration",
        "out_of_service_since": now - 60_000,
    }
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[sensor("a", tag="T1", location="1301 回风巷", **out), sensor("b")],
                latest=[reading("a", now, 1.6), reading("b", now, 0.3)],
            )
        }
    )
    badge = "(id) => document.querySelector(`.tile[data-sensor='${id}'] .oos-badge`)?.textContent"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{tile('a')}", 5)
        heads = await browser.js(
            "[...document.querySelectorAll('.tile')].map((t) =>"
            " [t.querySelector('.n').innerText, t.querySelector('.id').innerText])"
        )
        assert heads == [["T1 · 1301 回风巷", "a"], ["b", ""]], heads
        assert re.match("停用|out of service", await browser.js(f"({badge})('a')"))
        assert "recalibration" in await browser.js(f"{tile('a')}.title")
        assert "1.6" in await browser.js(f"{tile('a')}.querySelector('.v').textContent")
        assert await browser.js(f"({badge})('b')") is None
        hub.keys["k"].sensors[1] = sensor("b", **out)
        await hub.push("alarm", {"alarm_id": 9, "event_id": 90, "kind": "out_of_service"})
        await browser.wait_for(f"!!({badge})('b')", 5)


async def test_a_feed_points_tile_says_powered_or_not():
    """A feed point's tile read "1 on/off": it says 有电 or 无电, as a dispatcher says it."""
    now = now_ms()
    feed = {"kind": "power_feed", "unit": "on/off"}
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[sensor("on", **feed), sensor("off", **feed)],
                latest=[reading("on", now, 1), reading("off", now, 0)],
            )
        }
    )
    value = "(id) => document.querySelector(`.tile[data-sensor='${id}'] .v`).textContent"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{tile('off')}", 5)
        assert await browser.js(f"({value})('on')") in ("有电", "powered")
        assert await browser.js(f"({value})('off')") in ("无电", "no power")


async def test_an_interlock_tile_says_its_state_not_0_interlock():
    """An SIS flag's tile read "0 联锁" (helper-240): it says the state its rule's levels name
    at that value (a bypass flag 旁路, a trip 联锁动作, a state word either), else 正常."""
    now = now_ms()

    def level(name: str, above: float) -> dict[str, Any]:
        return {"name": name, "tier": "red", "above": above, "below": None, "recover": 0.5}

    flag = {"kind": "interlock", "unit": "", "levels": [level("bypassed", 1)]}
    trip = {"kind": "interlock", "unit": "", "levels": [level("tripped", 1)]}
    word = {"kind": "interlock", "unit": "", "levels": [level("bypassed", 1), level("tripped", 2)]}
    shown = {"flag0": 0, "flag1": 1, "trip1": 1, "word0": 0, "word1": 1, "word2": 2}
    specs = {"flag": flag, "trip": trip, "word": word}
    hub = FakeHub(
        keys={
            "k": Key(
                sensors=[sensor(sid, **specs[sid[:-1]]) for sid in shown],
                latest=[reading(sid, now, v) for sid, v in shown.items()],
            )
        }
    )
    value = "(id) => document.querySelector(`.tile[data-sensor='${id}'] .v`).textContent"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{tile('word2')}", 5)
        got = {sid: await browser.js(f"({value})('{sid}')") for sid in shown}
    zh = {"flag0": "正常", "flag1": "旁路", "trip1": "联锁动作", "word0": "正常"}
    zh |= {"word1": "旁路", "word2": "联锁动作"}
    en = {"flag0": "normal", "flag1": "bypassed", "trip1": "tripped", "word0": "normal"}
    en |= {"word1": "bypassed", "word2": "tripped"}
    assert got in (zh, en), got


async def test_the_row_shows_the_peak_its_value_and_when_it_was_reached():
    """The row showed the value at the clear (0.5) and the start: the worst it was is what a
    dispatcher looks for, the peak level with the value and time that first reached it."""
    peak_ts = now_ms() - 30_000
    peaked = {**shaped(1, "a", "red", **RECOVERED), "value": 0.5, "peak_level": 2}
    peaked.update(peak_level_name="power_cut", peak_value=1.6, peak_ts=peak_ts)
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=[peaked, alarm(2, "b")])}
    )
    cell = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] td:nth-child(4)`)"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{row(2)}", 5)
        await browser.js(f"{q('#alarm-filter [data-filter=all]')}.click()")
        await browser.wait_for(f"!!{row(1)}", 5)
        text = await browser.js(f"({cell})(1).textContent")
        when = time.strftime("%H:%M:%S", time.gmtime(peak_ts / 1000 + 8 * 3600))
        assert text.startswith("1.6 %CH4") and when in text, text
        assert re.search(
            "断电|power_cut", await browser.js(f"({cell})(1).querySelector('.peak-at').textContent")
        )
        assert "0.5" in await browser.js(f"({cell})(1).title")  # the value at its last change
        # an alarm of a hub that does not say its peak shows its value, as before
        assert await browser.js(f"({cell})(2).textContent") == "1.2 %CH4"


async def test_a_points_alarms_and_the_shown_lower_tiers_are_acknowledged_at_once_once_counted():
    """A night dispatcher acknowledged a chattering point's 74 alarms one by one. A row of a point
    with more than one waiting acknowledges them all, and a button over the list the shown ones
    below red; each asks first, saying how many, and sends exactly the alarms counted. A red
    point's asks for a note (the hub's rule)."""
    chatter = [shaped(i, "a") for i in (1, 2, 3)]
    others = [shaped(4, "b", "yellow"), shaped(5, "c", "red"), shaped(6, "e", "blue")]
    red = [shaped(i, "r", "red") for i in (8, 9)]
    done = shaped(7, "d", isa_state="ack", acked=True)
    alarms = [*chatter, *others, *red, done]
    sensors = [sensor(x) for x in "abcder"]
    hub = FakeHub(keys={"k": Key(sensors=sensors, alarms=alarms)})
    isa = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] .isa`).dataset.isa"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{row(9)}", 5)
        for aid in (1, 2, 3):
            assert "3" in await browser.js(f"{row(aid, '.act-ackpoint')}.textContent")
        for aid in (4, 5, 6, 7):
            assert await browser.js(f"!{row(aid, '.act-ackpoint')}")
        # a red point's: a note needed
        await browser.js(f"{row(8, '.act-ackpoint')}.click()")
        form = q("tr.extra[data-for='8'] form[data-form='ackpoint']")
        await browser.wait_for(f"!!{form}", 5)
        assert await browser.js(f"{form}.elements.note.required")
        await browser.js(f"{form}.querySelector('.cancel').click()")
        # the chattering point's three, asked first
        await browser.js(f"{row(1, '.act-ackpoint')}.click()")
        form = q("tr.extra[data-for='1'] form[data-form='ackpoint']")
        await browser.wait_for(f"!!{form}", 5)
        assert "3" in await browser.js(f"{form}.querySelector('.bulk-ask').textContent")
        assert not await browser.js(f"{form}.elements.note.required")
        assert hub.acknowledged == []
        await browser.js(f"{form}.querySelector('.submit').click()")
        await browser.wait_for(f"[1, 2, 3].every((id) => ({isa})(id) === 'ack')", 5)
        (body,) = hub.acknowledged
        assert (sorted(body["ids"]), body["note"]) == ([1, 2, 3], "")
        await browser.wait_for(f"{row(1, '.msg.ok')}?.textContent.includes('3')", 5)
        # the shown lower tiers waiting: yellow 4 and blue 6, not the red ones
        lower = q("#ack-lower")
        await browser.wait_for(f"!{lower}.hidden && {lower}.textContent.includes('2')", 5)
        await browser.js(f"{lower}.click()")
        bar = q("#bulk-form")
        await browser.wait_for(f"!{bar}.hidden", 5)
        ask = await browser.js(f"{bar}.querySelector('.bulk-ask').textContent")
        assert re.search(r"2.*(黄色|yellow) 1 · (蓝色|blue) 1", ask), ask
        assert "2" in await browser.js(f"{bar}.querySelector('.submit').textContent")
        await browser.js(f"{bar}.elements.note.value = '夜班批量确认'")
        await browser.js(f"{bar}.querySelector('.submit').click()")
        await browser.wait_for(f"{bar}.hidden && !{q('#bulk-msg')}.hidden", 5)
        assert (sorted(hub.acknowledged[1]["ids"]), hub.acknowledged[1]["note"]) == (
            [4, 6],
            "夜班批量确认",
        )
        await browser.wait_for(f"({isa})(4) === 'ack' && ({isa})(6) === 'ack'", 5)
        assert [await browser.js(f"({isa})({i})") for i in (5, 8, 9)] == ["unack"] * 3
        assert await browser.js(f"{lower}.hidden")  # nothing below red waits now


async def test_a_points_shown_alarms_take_a_disposal_step_at_once_with_a_note_once_counted():
    """A night dispatcher had 104 chattering alarms to verify, dispose and close, one form each.
    A row of a point with more than one shown alarm at the same step takes them through it: it
    asks first, saying how many and how many reached red, needs a note, and sends exactly the
    alarms counted; the rows then show their new step. A close counts only those returned."""
    chatter = [shaped(i, "a", **RECOVERED) for i in (1, 2, 3)]
    chatter[2]["peak_tier"] = "red"
    ahead = shaped(4, "a", disposal="verified", **RECOVERED)  # another step: not counted
    active = [shaped(i, "b", disposal="disposed") for i in (5, 6)]  # cannot close yet
    lone = shaped(7, "c", **RECOVERED)
    alarms = [*chatter, ahead, *active, lone]
    hub = FakeHub(keys={"k": Key(sensors=[sensor(x) for x in "abc"], alarms=alarms)})
    disp = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] .disp`).dataset.disposal"
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{row(3, '.act-steppoint')}", 5)
        for aid in (1, 2, 3):
            text = await browser.js(f"{row(aid, '.act-steppoint')}.textContent")
            assert re.search("3", text) and re.search("核实|Verify", text), text
        for aid in (4, 5, 6, 7):
            assert await browser.js(f"!{row(aid, '.act-steppoint')}")
        await browser.js(f"{row(1, '.act-steppoint')}.click()")
        form = q("tr.extra[data-for='1'] form[data-form='steppoint']")
        await browser.wait_for(f"!!{form}", 5)
        ask = await browser.js(f"{form}.querySelector('.bulk-ask').textContent")
        assert "3" in ask and re.search("1 条曾达红色|1 of them reached red", ask), ask
        assert await browser.js(f"{form}.elements.note.required")
        assert "3" in await browser.js(f"{form}.querySelector('.submit').textContent")
        await browser.js(f"{form}.elements.note.value = '探头抖动，现场核实'")
        await browser.js(f"{form}.querySelector('.submit').click()")
        await browser.wait_for(f"[1, 2, 3].every((id) => ({disp})(id) === 'verified')", 5)
        (body,) = hub.disposed
        assert (sorted(body["ids"]), body["step"], body["note"]) == (
            [1, 2, 3],
            "verify",
            "探头抖动，现场核实",
        )
        await browser.wait_for(f"{row(1, '.msg.ok')}?.textContent.includes('3')", 5)
        # now 1-4 are verified together: the next step counts four
        await browser.wait_for(f"{row(4, '.act-steppoint')}?.textContent.includes('4')", 5)
        assert await browser.js(f"({disp})(7)") == "received"


async def test_a_refused_close_keeps_its_form_and_the_reason_when_clicked_again():
    """Close on an alarm still active is refused; clicking Close again (to try again) took the
    form away with the note typed and the reason."""
    active = shaped(1, "a", disposal="disposed", isa_state="ack", acked=True)
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a")], alarms=[active])})
    form = q("tr.extra[data-for='1'] form[data-form='close']")
    async with serving(hub), page(hub, "k") as browser:
        await browser.wait_for(f"!!{row(1, '.act-close')}", 5)
        await browser.js(f"{row(1, '.act-close')}.click()")
        await browser.wait_for(f"!!{form}", 5)
        await browser.js(f"{form}.elements.note.value = 'report filed'")
        await browser.js(f"{form}.querySelector('.submit').click()")
        msg = row(1, ".msg.error")
        await browser.wait_for(f"!{msg}.hidden && {msg}.textContent.startsWith('409')", 5)
        await browser.js(f"{row(1, '.act-close')}.click()")
        await browser.wait_for(f"!{row(1, '.act-close')}.disabled", 5)
        assert await browser.js(f"{form}?.elements.note.value") == "report filed"
        assert await browser.js(f"!{msg}.hidden && {msg}.textContent.startsWith('409')")
        await browser.js(f"{form}.querySelector('.cancel').click()")
        await browser.wait_for(f"!{form}", 5)


# the page's timers, quicker: the map read every 10 s and the tick of 5 s (which reads the
# sensors again every 12th)
QUICK_TIMERS = (
    "const __si = window.setInterval.bind(window);"
    "window.setInterval = (f, ms, ...a) =>"
    " __si(f, ms === 10000 ? 200 : ms === 5000 ? 50 : ms, ...a);"
)


async def test_panels_with_nothing_to_show_are_hidden_until_it_comes():
    """A mine's key was shown an empty vehicles panel (and a key of no sensors empty tiles and
    trend): a panel shows once the key has something for it, and comes when it does."""
    hub = FakeHub(keys={"k": Key()})
    shown = "(id) => !document.querySelector(id).hidden"
    async with serving(hub), page(hub, "k", script=QUICK_TIMERS) as browser:
        await browser.wait_for(f"{q('#live')}.classList.contains('on')", 5)
        for panel in ("#map-panel", "#sites-panel", "#trend-panel"):
            assert not await browser.js(f"({shown})('{panel}')"), panel
        assert await browser.js(f"({shown})('#alarms-panel')")
        hub.keys["k"].sensors = [sensor("a")]
        await browser.wait_for(f"({shown})('#sites-panel') && !!{tile('a')}", 5)
        assert await browser.js(f"({shown})('#trend-panel')")
        hub.vehicles = [
            {
                "id": "v1",
                "tenant": "t",
                "plate": "苏A·1",
                "vehicle_class": "hazmat",
                "speed_sensor": "v1.speed",
            }
        ]
        await browser.wait_for(f"({shown})('#map-panel')", 5)


def _listed(*alarms: dict[str, Any]) -> dict[str, Any]:
    return {"count": len(alarms), "truncated": False, "alarms": list(alarms)}


def cst(ms: int) -> str:
    """`ms` as the dashboard writes a time: Beijing time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000 + 8 * 3600))


def handover_answer(now: int) -> dict[str, Any]:
    """A handover as the hub answers it (docs/alarms.md, the shift handover)."""
    tiers = {"red": 1, "orange": 2, "yellow": 3, "blue": 0, "none": 0}
    raised = {
        "raised": 6,
        "peak_tier": tiers,
        "acknowledged": 4,
        "ack": None,
        "disposal": {"received": 6, "verified": 0, "disposed": 0, "closed": 0},
        "closed_time": None,
        "overdue_ever": 1,
        "open": 5,
        "shelved": 1,
        "shelved_by": [],
    }
    point = {"tenant": "t", "site": "face", "device": "d", "rule": "r", "side": "above"}
    return {
        "start": now - 8 * 3_600_000,
        "end": now,
        "now": now,
        "site": None,
        "raised": raised,
        "red": _listed({**alarm(2, "f"), "tier": "red", "location": "2201 工作面"}),
        "active_unack": _listed({**alarm(1, "a"), "location": "1301 回风巷"}),
        "active_ack": _listed(),
        "returned_unack": _listed(),
        "overdue": _listed(alarm(1, "a", overdue=True)),
        "review": _listed({**alarm(3, "g"), "disposal": "review", "location": "3301 工作面"}),
        "shelved": [
            {
                **point,
                "sensor": "b",
                "location": "",
                "tag": "T2",
                "level": 1,
                "level_name": "alarm",
                "tier": "yellow",
                "by": "王工",
                "reason": "探头标定",
                "since": now - 60_000,
                "until": now + 3_600_000,
            }
        ],
        "out_of_service": [
            {
                **point,
                "sensor": "c",
                "kind": "methane",
                "location": "",
                "tag": "",
                "by": "李班长",
                "reason": "探头更换",
                "since": now - 120_000,
            }
        ],
        "chattering": [
            {
                **point,
                "sensor": "a",
                "activations": 74,
                "worst": 9,
                "first_ts": now - 3_600_000,
                "worst_start": now - 600_000,
            }
        ],
    }


async def test_the_handover_opens_from_the_header_prints_alone_and_asks_the_shift_chosen():
    """A night dispatcher handing over at 08:00 gathered the shift from five places: the
    header's 交接班 opens one panel of it (8 or 12 h, a range, a site), printed alone."""
    now = now_ms()
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("a"), sensor("b"), sensor("c", site="roadway")])},
        handover=handover_answer(now),
    )
    section = "(k) => document.querySelector(`#handover-body [data-section=${k}]`)?.innerText"
    shown = "(s) => getComputedStyle(document.querySelector(s)).display !== 'none'"
    async with serving(hub), page(hub, "k") as browser:
        assert await browser.js(f"{q('#handover-panel')}.hidden")
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!({section})('active_unack')", 5)
        assert hub.count("/api/v1/handover?hours=8") == 1
        assert "a · 1301 回风巷" in await browser.js(f"({section})('active_unack')")
        # the shift's red alarms first, handled or not (helper-108)
        assert "f · 2201 工作面" in await browser.js(f"({section})('red')")
        assert "(1)" in await browser.js(f"({section})('overdue')")
        review = await browser.js(f"({section})('review')")  # the centre's closings to review
        assert "centre's review (1)" in review and "3301 工作面" in review, review
        assert "pending review" in review, review
        assert re.search(r"\(0\)\s*(无|none)", await browser.js(f"({section})('active_ack')"))
        shelf = await browser.js(f"({section})('shelved')")
        assert "王工" in shelf and "探头标定" in shelf and "b · T2" in shelf, shelf
        assert "李班长" in await browser.js(f"({section})('oos')")
        # the point began chattering an hour ago; its worst minute 10 min ago, beside its count
        chatter = await browser.js(f"({section})('chattering')")
        assert "74" in chatter and cst(now - 3_600_000) in chatter, chatter
        assert re.search(rf"9 ?[（(](from )?{cst(now - 600_000)[11:]}", chatter), chatter
        assert cst(now - 600_000) not in chatter  # not as the start
        counts = await browser.js(
            "[...document.querySelectorAll('.ho-raised tbody td')].map((c) => c.innerText)"
        )
        assert counts == ["6", "1", "2", "3", "0", "4", "5", "1", "1"], counts
        # 12 hours, a site, a range: each asked of the hub
        twelve = q("#handover-span [data-hours='12']")
        await browser.js(f"{twelve}.click()")
        sites = await browser.js(
            "[...document.querySelectorAll('#handover-site option')].map((o) => o.value)"
        )
        assert sites == ["", "t/face", "t/roadway"], sites
        await browser.js(
            f"(() => {{ const s = {q('#handover-site')}; s.value = 't/roadway';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await browser.js(f"{q('#handover-span [data-hours=range]')}.click()")
        await browser.wait_for(f"!{q('#handover-range')}.hidden", 5)

        def asked() -> list[str]:
            return [c for c in hub.calls if c.startswith("/api/v1/handover")]

        for _ in range(50):
            if len(asked()) >= 4:
                break
            await asyncio.sleep(0.05)
        assert asked()[1:] == [
            "/api/v1/handover?hours=12",
            "/api/v1/handover?hours=12&tenant=t&site=roadway",
            f"/api/v1/handover?start={now - 8 * 3_600_000}&end={now}&tenant=t&site=roadway",
        ], asked()
        # printed: the handover alone, with the lines to sign
        await browser.call("Emulation.setEmulatedMedia", media="print")
        assert await browser.js(f"({shown})('#handover-panel')")
        for hidden in ("#alarms-panel", "#sites-panel", "header", "#handover-panel .no-print"):
            assert not await browser.js(f"({shown})('{hidden}')"), hidden
        assert re.match("交班人|Handed over by", await browser.js(f"{q('.ho-sign')}.innerText"))
        # closed, the page prints as before
        await browser.call("Emulation.setEmulatedMedia", media="screen")
        await browser.js(f"{q('#handover-close')}.click()")
        await browser.call("Emulation.setEmulatedMedia", media="print")
        assert await browser.js(f"({shown})('#alarms-panel')")
        await browser.call("Emulation.setEmulatedMedia", media="")


ZH = "localStorage.setItem('hh-lang', 'zh');"


async def test_a_centres_handover_says_which_enterprise_raised_what():
    """A city centre's handover gave the shift's counts for the city alone: under them, a row
    per enterprise (its name and id) with the same counts; an enterprise's own key has none."""
    now = now_ms()
    shift = handover_answer(now)
    coal = {
        **shift["raised"],
        "tenant": "north-coal",
        "tenant_name": "北方煤业",
        "raised": 4,
        "peak_tier": {"red": 1, "orange": 2, "yellow": 1, "blue": 0, "none": 0},
    }
    chem = {
        **shift["raised"],
        "tenant": "acme-chem",
        "tenant_name": "",
        "raised": 2,
        "peak_tier": {"red": 0, "orange": 0, "yellow": 2, "blue": 0, "none": 0},
    }
    hub = FakeHub(
        keys={
            "k": Key(sensors=[sensor("a")]),
            "e": Key(sensors=[sensor("a")], role="enterprise", tenants=["t"]),
        },
        handover={
            **shift,
            "raised_by_tenant": [chem, coal],
            "centre_unack": _listed({**alarm(9, "a"), "location": "1301 回风巷"}),
        },
    )
    rows = (
        "[...document.querySelectorAll('.ho-raised-by tbody tr')]"
        ".map((r) => [...r.cells].slice(0, 6).map((c) => c.innerText))"
    )
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('.ho-raised-by')}", 5)
        assert await browser.js(rows) == [
            ["acme-chem", "2", "0", "0", "2", "0"],
            ["北方煤业 (north-coal)", "4", "1", "2", "1", "0"],
        ]
        head = await browser.js(f"{q('.ho-raised-by thead')}.innerText")
        assert head.startswith("企业"), head
        # what waits for the centre's own acknowledgement, first of the lists (helper-133)
        sections = "#handover-body [data-section]"
        got = await browser.js(
            f"[...document.querySelectorAll('{sections}')].map((s) => s.dataset.section)"
        )
        assert got[1] == "centre_unack", got
        waiting = await browser.js(f"{q('#handover-body [data-section=centre_unack]')}.innerText")
        assert "待本中心确认 (1)" in waiting and "1301 回风巷" in waiting, waiting
    async with serving(hub), page(hub, "e") as browser:
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('.ho-raised')}", 5)
        assert await browser.js(f"!{q('.ho-raised-by')}")
        assert await browser.js(f"!{q('#handover-body [data-section=centre_unack]')}")


async def test_a_maintenance_alarm_reads_as_calibration_held_too_long_not_overdue():
    """A detector left in calibration raises `maintenance`, level `overdue`: the row showed
    `maintenance overdue` in a Chinese page, or would read as the disposal's 超期. Its kind reads
    标定/手动超时, its level in the journal 维护超时."""
    held = {
        **alarm(1, "nh3-01"),
        "side": "maintenance",
        "rule": "chem-gas.toxic-oel",
        "level_name": "overdue",
        "tier": "yellow",
        "value_unit": "s",
    }
    held["events"] = [{**held["events"][0], "level_name": "overdue", "tier": "yellow"}]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("nh3-01")], alarms=[held])})
    level = f"{row(1, 'td:nth-child(3)')}.textContent"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        assert await browser.js(level) == "标定/手动超时"
        await browser.js(f"{row(1)}.click()")
        await browser.wait_for(f"!!{q('tr.extra table.journal td.level')}", 5)
        assert await browser.js(f"{q('tr.extra table.journal td.level')}.textContent") == "维护超时"
        await browser.js(f"{q('#lang')}.click()")
        await browser.wait_for(f"{level} === 'maintenance'", 5)


async def test_a_calibration_due_alarm_reads_as_calibration_overdue():
    """标校超期 (a methane head not calibrated for 15 days): the row reads the kind once, not
    "标校超期 标校超期" nor the maintenance's 维护超时; its value is in days."""
    due = {
        **alarm(1, "ch4-t1"),
        "side": "calibration_due",
        "rule": "coal-methane.face-t1",
        "level_name": "calibration_overdue",
        "tier": "yellow",
        "value": 15.0,
        "value_unit": "d",
    }
    due["events"] = [{**due["events"][0], "level_name": "calibration_overdue", "tier": "yellow"}]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("ch4-t1")], alarms=[due])})
    level = f"{row(1, 'td:nth-child(3)')}.textContent"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        assert await browser.js(level) == "标校超期"
        await browser.js(f"{row(1)}.click()")
        await browser.wait_for(f"!!{q('tr.extra table.journal td.level')}", 5)
        assert await browser.js(f"{q('tr.extra table.journal td.level')}.textContent") == "标校超期"


async def test_a_duration_value_reads_in_hours_and_minutes_and_days_in_days():
    """A coach's 累计驾驶超时 showed "31260 s" (seconds of driving), a detector's 标校超期 "15 d":
    the row, its journal and the handover read "8小时41分" and "15天" (English "8 h 41 min",
    "15 d"); under a minute in seconds; a whole hour without minutes."""
    now = now_ms()

    def valued(aid: int, sid: str, side: str, value: float, unit: str) -> dict[str, Any]:
        a = {
            **alarm(aid, sid),
            "side": side,
            "tier": "red",
            "level_name": "fatigue_daily",
            "value": value,
            "value_unit": unit,
        }
        a["events"] = [{**a["events"][0], "value": value}]
        return a

    daily = valued(1, "bus.speed", "fatigue_daily", 31_260.0, "s")
    due = valued(2, "ch4-t1", "calibration_due", 15.0, "d")
    silent = valued(3, "gw.link", "offline", 45.0, "s")
    whole = valued(4, "bus2.speed", "fatigue", 7_200.0, "s")
    sensors = [sensor(x) for x in ("bus.speed", "ch4-t1", "gw.link", "bus2.speed")]
    shift = {**handover_answer(now), "red": _listed(daily)}
    key = Key(sensors=sensors, alarms=[daily, due, silent, whole])
    hub = FakeHub(keys={"k": key}, handover=shift)

    def value(aid: int) -> str:
        return f"{row(aid, 'td:nth-child(4)')}.textContent"

    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(4)}", 5)
        assert [await browser.js(value(i)) for i in (1, 2, 3, 4)] == [
            "8小时41分",
            "15天",
            "45秒",
            "2小时",
        ]
        await browser.js(f"{row(1)}.click()")
        await browser.wait_for(f"!!{q('tr.extra table.journal td.value')}", 5)
        journal = f"{q('tr.extra table.journal td.value')}.textContent"
        assert await browser.js(journal) == "8小时41分"
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('#handover-body [data-section=red] tbody tr')}", 5)
        cells = "[...document.querySelector('#handover-body [data-section=red] tbody tr').cells]"
        assert "8小时41分" in await browser.js(f"{cells}.map((c) => c.innerText).join('|')")
        await browser.js(f"{q('#lang')}.click()")
        await browser.wait_for(f"{value(1)} === '8 h 41 min'", 5)
        assert await browser.js(value(2)) == "15 d"


async def test_a_handover_row_names_the_level_its_peak_tier_and_value_were_of():
    """The printed handover showed the peak tier and value beside the alarm's last level: a
    level-2 leak back at level 1 read "红色 · 一级 · 50.2 %LEL", a HIHI back at HI "高报 · 9.211
    m". The level is the peak's, as its tier and value."""
    now = now_ms()

    def peaked(aid: int, sid: str, last: str, peak: str, value: float, unit: str) -> dict[str, Any]:
        return {
            **alarm(aid, sid),
            "tier": "orange",
            "level_name": last,
            "peak_tier": "red",
            "peak_level": 2,
            "peak_level_name": peak,
            "peak_value": value,
            "peak_ts": now - 30_000,
            "value": value / 2,
            "value_unit": unit,
        }

    leak = peaked(1, "lel1", "level1", "level2", 50.2, "%LEL")
    tank = peaked(2, "lt1", "hi", "hihi", 9.211, "m")
    shift = {**handover_answer(now), "red": _listed(leak, tank)}
    hub = FakeHub(keys={"k": Key(sensors=[sensor("lel1"), sensor("lt1")])}, handover=shift)
    cells = (
        "[...document.querySelectorAll('#handover-body [data-section=red] tbody tr')]"
        ".map((r) => [...r.cells].slice(0, 4).map((c) => c.innerText.trim()))"
    )
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('#handover-body [data-section=red] tbody tr')}", 5)
        rows = await browser.js(cells)
    (tier1, _, level1, value1), (tier2, _, level2, value2) = rows
    assert (tier1, level1, value1) == ("红色", "二级", "50.2 %LEL"), rows
    assert (tier2, level2, value2) == ("红色", "高高报", "9.211 m"), rows


async def test_a_centre_chooses_one_enterprise_for_the_list_the_tiles_and_the_handover():
    """A city centre's page had no enterprise filter: the header's 企业 chooses one (by name)
    for the list (read with `tenant=`), the tiles and the handover (asked with `tenant=`); the
    other enterprises' alarms waiting are still counted beside the list, and still sound."""
    now = now_ms()
    names = {"hx-chem": "华兴化工", "ly-chem": "临沂化工"}

    def of(tenant: str, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "tenant": tenant, "tenant_name": names[tenant]}

    sensors = [of("hx-chem", sensor("a")), of("ly-chem", sensor("b", site="tanks"))]
    alarms = [of("hx-chem", alarm(1, "a")), of("ly-chem", {**alarm(2, "b"), "site": "tanks"})]
    hub = FakeHub(
        keys={
            "k": Key(sensors=sensors, alarms=alarms),
            "hx": Key(
                sensors=sensors[:1], alarms=alarms[:1], role="enterprise", tenants=["hx-chem"]
            ),
        },
        handover=handover_answer(now),
    )
    choose = (
        "(v) => { const s = document.querySelector('#tenant-filter'); s.value = v;"
        " s.dispatchEvent(new Event('change')); }"
    )
    shown_rows = "[...document.querySelectorAll('tr.alarm')].map((r) => r.dataset.alarm)"
    tiles = "[...document.querySelectorAll('.tile')].map((t) => t.dataset.sensor)"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(2)} && !{q('#tenant-filter')}.hidden", 5)
        options = await browser.js(
            "[...document.querySelectorAll('#tenant-filter option')].map((o) => [o.value, o.text])"
        )
        assert options == [["", "全部企业"], ["hx-chem", "华兴化工"], ["ly-chem", "临沂化工"]]
        await browser.js(f"({choose})('ly-chem')")
        await browser.wait_for(f"!{row(1)}", 5)
        assert await browser.js(shown_rows) == ["2"]
        assert await browser.js(tiles) == ["b"]
        # the rows are filtered at once, the enterprise's list asked for after: wait for it
        async with asyncio.timeout(5):
            while "/api/v1/alarms?open=true&limit=500&tenant=ly-chem" not in hub.calls:
                await asyncio.sleep(0.02)
        # the other enterprise's alarm still waits: counted beside the list
        others = await browser.js(f"{q('#unack-others')}.textContent")
        assert not await browser.js(f"{q('#unack-others')}.hidden") and "1" in others, others
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('#handover-body .facts')}", 5)
        assert "/api/v1/handover?hours=8&tenant=ly-chem" in hub.calls, hub.calls
        sites = await browser.js(
            "[...document.querySelectorAll('#handover-site option')].map((o) => o.value)"
        )
        assert sites == ["", "ly-chem/tanks"], sites
        facts = await browser.js(f"{q('#handover-body .facts')}.textContent")
        assert "临沂化工 / 全部场所" in facts, facts
        # every enterprise again
        await browser.js(f"({choose})('')")
        await browser.wait_for(f"!!{row(1)} && !!{row(2)}", 5)
        assert sorted(await browser.js(tiles)) == ["a", "b"]
        assert await browser.js(f"{q('#unack-others')}.hidden")
        await browser.wait_for("document.querySelectorAll('#handover-site option').length === 3", 5)
    # an enterprise's own key has nothing to choose
    async with serving(hub), page(hub, "hx") as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        assert await browser.js(f"{q('#tenant-filter')}.hidden")


async def test_two_enterprises_sites_of_one_id_are_told_apart_by_their_enterprise():
    """Two enterprises may give a site the same id (hx-chem/tank-farm, ly-chem/tank-farm): the
    handover offered one `tank-farm` and asked `site=tank-farm` alone, both enterprises' alarms.
    Each is offered under its enterprise's name and asked with its tenant; the tiles are headed
    by enterprise and site too."""
    now = now_ms()
    names = {"hx-chem": "华兴化工", "ly-chem": "临沂化工"}
    sensors = [
        {
            **sensor(f"{t}-lt1", site="tank-farm"),
            "tenant": t,
            "tenant_name": name,
            "site_name": "液氯罐区",
        }
        for t, name in names.items()
    ]
    hub = FakeHub(keys={"k": Key(sensors=sensors)}, handover=handover_answer(now))
    options = (
        "[...document.querySelectorAll('#handover-site option')].map((o) => [o.value, o.text])"
    )
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{tile('ly-chem-lt1')}", 5)
        headings = await browser.js(
            "[...document.querySelectorAll('#sites h3')].map((h) => h.textContent)"
        )
        assert sorted(headings) == ["临沂化工 / 液氯罐区", "华兴化工 / 液氯罐区"], headings
        await browser.js(f"{q('#handover-open')}.click()")
        await browser.wait_for(f"!!{q('#handover-body .facts')}", 5)
        got = await browser.js(options)
        assert sorted(got[1:]) == [
            ["hx-chem/tank-farm", "华兴化工 / 液氯罐区"],
            ["ly-chem/tank-farm", "临沂化工 / 液氯罐区"],
        ], got
        hub.handover = {**handover_answer(now), "site": "tank-farm"}
        await browser.js(
            f"(() => {{ const s = {q('#handover-site')}; s.value = 'ly-chem/tank-farm';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await browser.wait_for(
            f"{q('#handover-body .facts')}?.textContent.includes('临沂化工 / 液氯罐区')", 5
        )
    assert "/api/v1/handover?hours=8&tenant=ly-chem&site=tank-farm" in hub.calls, hub.calls


def named_alarm(aid: int, sid: str, device: str, **names: str) -> dict[str, Any]:
    """An alarm as the hub answers it with the registry's names (docs/api.md)."""
    found = {"device_name": "", "tag": "", "location": "", "sensor_kind": "", **names}
    return {**alarm(aid, sid), "device": device, **found}


async def test_a_row_names_the_point_and_its_device_as_the_registry_does():
    """A night dispatcher's rows said `ch4-t1` and nothing of the device: each row, its details
    and the handover's rows name the point (tag, location), what it measures and the device by
    the registry's names, the ids kept; a gateway (no name in the configuration) by its id."""
    face = named_alarm(
        1,
        "ch4-t1",
        "kj-sub-3",
        device_name="KJ 3 号分站",
        tag="T1",
        location="1301 回风巷",
        sensor_kind="methane",
    )
    gateway = named_alarm(2, "gateway:t/face/gw1", "gw1", sensor_kind="gateway")
    truck = named_alarm(
        3,
        "tanker-01.speed",
        "tanker-01",
        device_name="苏A·D1234",
        tag="hazmat",
        location="苏A·D1234",
        sensor_kind="speed",
    )
    now = now_ms()
    shift = {**handover_answer(now), "active_unack": _listed(face)}
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("ch4-t1")], alarms=[face, gateway, truck])},
        handover=shift,
    )
    cell = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] td:nth-child(2)`)"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(3)}", 5)

        async def shown(aid: int) -> tuple[str, str]:
            text = await browser.js(f"({cell})({aid}).firstChild.textContent")
            device = await browser.js(f"({cell})({aid}).querySelector('.device')?.textContent")
            return text, device

        assert await shown(1) == ("ch4-t1 · T1 · 1301 回风巷", "甲烷 · KJ 3 号分站 (kj-sub-3)")
        assert await shown(2) == ("gateway:t/face/gw1", "网关 · gw1")
        # a vehicle's plate is its location: not said twice
        assert await shown(3) == ("tanker-01.speed · hazmat · 苏A·D1234", "车速 · tanker-01")
        await browser.js(f"{row(1)}.click()")
        await browser.wait_for(f"!!{q('tr.extra .facts')}", 5)
        facts = await browser.js(f"{q('tr.extra .facts')}.textContent")
        assert "设备KJ 3 号分站 (kj-sub-3)" in facts, facts
        assert "测点ch4-t1 · T1 · 1301 回风巷" in facts, facts
        await browser.js(f"{q('#lang')}.click()")  # English: the kind as the hub names it
        await browser.wait_for(f"({cell})(1).querySelector('.device').textContent.startsWith('m')")
        assert (await shown(1))[1] == "methane · KJ 3 号分站 (kj-sub-3)"
        assert "DeviceKJ 3 号分站 (kj-sub-3)" in await browser.js(
            f"{q('tr.extra .facts')}.textContent"
        )
        await browser.js(f"{q('#handover-open')}.click()")
        section = "document.querySelector('#handover-body [data-section=active_unack]')"
        await browser.wait_for(f"!!{section}", 5)
        text = await browser.js(f"{section}.innerText")
        assert "ch4-t1 · T1 · 1301 回风巷" in text and "KJ 3 号分站 (kj-sub-3)" in text, text


async def test_a_red_alarm_acknowledged_alone_asks_its_note_first():
    """A red alarm acknowledged alone asked nothing (in bulk it needed a note): its Acknowledge
    opens a form asking for the note, required, and sends it with the acknowledgement; an
    orange one is still acknowledged at a click. A refusal of the hub (an alarm that turned
    red meanwhile) is said in the page's language."""
    red = {**alarm(1, "a"), "tier": "red", "peak_tier": "red"}
    orange = alarm(2, "b")
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a"), sensor("b")], alarms=[red, orange])})
    form = "tr.extra[data-for='1'] form.act-form[data-form=ack]"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(1, 'button[data-act=ack]')}", 5)
        await browser.js(f"{row(1, 'button[data-act=ack]')}.click()")
        await browser.wait_for(f"!!{q(form)}", 5)
        assert "红色报警" in await browser.js(f"{q(form)}.innerText")
        assert await browser.js(f"{q(form + ' [name=note]')}.required")
        assert hub.acked_one == []  # asked first, nothing sent
        await browser.js(f"{q(form + ' [name=note]')}.value = '   '")
        await browser.js(f"{q(form + ' button[type=submit]')}.click()")  # spaces: no note
        said = "红色报警须填写确认说明"
        await browser.wait_for(f"{row(1, '.msg')}.textContent.includes('{said}')", 5)
        assert hub.acked_one == []
        await browser.js(f"{q(form + ' [name=note]')}.value = '断电已确认'")
        await browser.js(f"{q(form + ' button[type=submit]')}.click()")
        await browser.wait_for(f"{row(1, '.isa')}?.dataset.isa === 'ack'", 5)
        assert hub.acked_one == [(1, {"note": "断电已确认"})]
        assert not await browser.js(f"!!{q(form)}")  # done: the form closes
        # orange: at a click, no note asked
        await browser.js(f"{row(2, 'button[data-act=ack]')}.click()")
        await browser.wait_for(f"{row(2, '.isa')}?.dataset.isa === 'ack'", 5)
        assert hub.acked_one[-1] == (2, None)
    # the hub refuses (the alarm went red meanwhile): its reason in Chinese
    hub = FakeHub(keys={"k": Key(sensors=[sensor("b")], alarms=[alarm(2, "b")])}, red_asks=True)
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(2, 'button[data-act=ack]')}", 5)
        await browser.js(f"{row(2, 'button[data-act=ack]')}.click()")
        await browser.wait_for(f"{row(2, '.msg')}.textContent", 5)
        assert await browser.js(f"{row(2, '.msg')}.textContent") == "422 红色报警须填写确认说明"


async def test_the_shown_alarms_take_a_disposal_step_at_once_from_the_bar_once_asked():
    """After a night's flood the dispatcher disposed point by point, a row at a time: the bar
    over the list takes the shown alarms that may take their next step through one step at
    once. It asks first which step (each with how many), how many and how many reached red,
    needs a note, and sends exactly the alarms counted; the rows then show their new step. A
    close counts only those returned to normal."""
    received = [shaped(i, "a", **RECOVERED) for i in (1, 2)]
    red = shaped(3, "c", **RECOVERED)
    red["peak_tier"] = "red"
    verified = [shaped(i, x, disposal="verified", **RECOVERED) for i, x in ((4, "a"), (8, "d"))]
    active = [shaped(i, "b", disposal="disposed") for i in (5, 6)]  # cannot close yet
    closing = shaped(7, "e", disposal="disposed", **RECOVERED)
    alarms = [*received, red, *verified, *active, closing]
    hub = FakeHub(keys={"k": Key(sensors=[sensor(x) for x in "abcde"], alarms=alarms)})
    disp = "(id) => document.querySelector(`tr.alarm[data-alarm='${id}'] .disp`).dataset.disposal"
    button, bar = q("#step-shown"), q("#step-form")
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!{button}.hidden", 5)
        assert await browser.js(f"{button}.textContent") == "所列报警批量处置（6 条）"
        assert await browser.js(f"{bar}.hidden")
        await browser.js(f"{button}.click()")
        await browser.wait_for(f"!{bar}.hidden", 5)
        assert hub.disposed == []  # asked first
        options = await browser.js(
            f"[...{bar}.elements.step.options].map((o) => [o.value, o.textContent])"
        )
        assert options == [["verify", "核实 3"], ["dispose", "处置 2"], ["close", "办结 1"]]
        assert await browser.js(f"{bar}.elements.step.value") == "verify"  # the most first
        ask = await browser.js(f"{bar}.querySelector('.bulk-ask').textContent")
        assert ask == "核实所列的 3 条报警？其中 1 条曾达红色。同一说明记入每条报警的日志", ask
        assert await browser.js(f"{bar}.elements.note.required")
        # another step: asked anew, what was typed kept
        await browser.js(f"{bar}.elements.note.value = '夜班批量处置'")
        await browser.js(
            f"(() => {{ const s = {bar}.elements.step; s.value = 'dispose';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await browser.wait_for(f"{bar}.querySelector('.bulk-ask').textContent.includes('2 条')")
        assert await browser.js(f"{bar}.querySelector('.submit').textContent") == "处置 2 条"
        assert await browser.js(f"{bar}.elements.note.value") == "夜班批量处置"
        await browser.js(f"{bar}.querySelector('.submit').click()")
        await browser.wait_for(f"({disp})(4) === 'disposed' && ({disp})(8) === 'disposed'", 5)
        (body,) = hub.disposed
        assert (sorted(body["ids"]), body["step"]) == ([4, 8], "dispose")
        assert body["note"] == "夜班批量处置"
        await browser.wait_for(f"{bar}.hidden && !{q('#bulk-msg')}.hidden", 5)
        assert await browser.js(f"{q('#bulk-msg')}.textContent") == "已处置 2 条"
        assert [await browser.js(f"({disp})({i})") for i in (1, 2, 3)] == ["received"] * 3
        # a note is required (the field's, and spaces are none): nothing sent
        await browser.wait_for(f"!{button}.hidden", 5)
        await browser.js(f"{button}.click()")
        await browser.wait_for(f"!{bar}.hidden", 5)
        assert await browser.js(f"!{bar}.elements.note.checkValidity()")
        await browser.js(f"{bar}.elements.note.value = '   '")
        await browser.js(f"{bar}.querySelector('.submit').click()")
        await browser.wait_for(f"{q('#bulk-msg')}.textContent === '说明（必填）'", 5)
        assert len(hub.disposed) == 1
        await browser.js(f"{bar}.querySelector('.cancel').click()")
        assert await browser.js(f"{bar}.hidden")


KEY_FULL = (
    "this key has 10 live streams open, the most one key may: close one (another tab, another"
    " display) first"
)
HUB_FULL = "the hub has 500 live streams open, the most it keeps: try again later"


async def test_a_refused_stream_is_said_with_why_and_tried_again_after_its_wait():
    """A wall display's stream answered 429 (its key had 10 open) was retried in silence: the
    page stayed "offline" and nobody knew why. The refusal is said over the page in the page's
    language, with the hub's reason and when it tries again (the hub's Retry-After, never
    sooner than its own backoff); taken at last, the note goes and the page is live."""
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("a")])}, stream_refusals=[(KEY_FULL, 3), (HUB_FULL, 1)]
    )
    note = q("#stream-msg")
    async with serving(hub):
        browser = Browser()
        try:
            await browser.open("about:blank")
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=ZH)
            await browser.call("Page.navigate", url=f"http://127.0.0.1:{hub.port}/")
            await login(browser, "k", live=False)
            await browser.wait_for(f"!{note}.hidden", 5)
            text = await browser.js(f"{note}.textContent")
            assert text.startswith(
                "实时数据流被拒绝（429）：此密钥已打开 10 个实时连接，已达上限"
            ), text
            assert re.search(r"[23] 秒后重试$", text), text
            assert await browser.js(f"{q('#live')}.textContent") == "离线"
            await browser.wait_for(f"/[12] 秒后重试$/.test({note}.textContent)", 3)  # counts down
            await browser.js(f"{q('#lang')}.click()")
            text = await browser.js(f"{note}.textContent")
            assert text.startswith("The live stream is refused (429): this key has 10 live"), text
            assert re.search(r"Trying again in [0-9] s$", text), text
            # tried again after the 3 s asked: refused by the hub this time, said so
            await browser.wait_for(f"{note}.textContent.includes('the hub has 500')", 6)
            assert hub.count("/api/v1/stream") == 2
            # then taken: the note goes, the page is live
            await browser.wait_for(f"{q('#live')}.classList.contains('on')", 8)
            assert await browser.js(f"{note}.hidden")
            assert hub.count("/api/v1/stream") == 3
        finally:
            await browser.close()


async def test_what_an_action_did_is_said_until_the_next_refresh_or_action_not_after():
    """The note "已确认 2 条" stood over a list that had changed since (a dispatcher read it as the
    state of the rows below): the note of what a bulk action did goes at the next refresh of the
    list or the next action, over the list as under a row."""
    lower = [shaped(1, "a", "yellow"), shaped(2, "a", "yellow")]
    red = [shaped(i, "r", "red") for i in (3, 4)]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("a"), sensor("r")], alarms=[*lower, *red])})
    said = q("#bulk-msg")
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!{q('#ack-lower')}.hidden", 5)
        await browser.js(f"{q('#ack-lower')}.click()")
        await browser.wait_for(f"!{q('#bulk-form')}.hidden", 5)
        await browser.js(f"{q('#bulk-form')}.querySelector('.submit').click()")
        await browser.wait_for(f"!{said}.hidden && {said}.textContent === '已确认 2 条'", 5)
        # the list read afresh (another filter): the note goes
        await browser.js(f"{q('#alarm-filter [data-filter=all]')}.click()")
        await browser.wait_for(f"{said}.hidden", 5)
        # a point's two red ones, with a note: said under the row
        await browser.js(f"{row(3, '.act-ackpoint')}.click()")
        form = q("tr.extra[data-for='3'] form[data-form='ackpoint']")
        await browser.wait_for(f"!!{form}", 5)
        await browser.js(f"{form}.elements.note.value = '断电已确认'")
        await browser.js(f"{form}.querySelector('.submit').click()")
        await browser.wait_for(f"{row(3, '.msg.ok')}?.textContent === '已确认 2 条'", 5)
        # the next action (a comment opened on another row): the note goes
        await browser.js(f"{row(1, 'button[data-act=comment]')}.click()")
        await browser.wait_for(f"{row(3, '.msg')}.hidden", 5)
        assert await browser.js(f"{row(3, '.msg')}.textContent") == ""


async def test_the_dashboards_chinese_and_english_say_the_same_things():
    """Every text of the page in both languages: a key in one dictionary alone shows its name
    to the other language's operator. Only the Chinese labels of names the hub gives in English
    (kinds, levels, journal events: `k_`, `kind_`, `lvl_`, `ev_`) stand alone: in English the
    name is shown as it is."""
    hub = FakeHub(keys={"k": Key()})
    async with serving(hub), page(hub, "k") as browser:
        apart = await browser.js(
            """(async () => {
                const names = /^(k|kind|lvl|ev)_/;
                const found = {};
                for (const [file, name] of [["app", "T"], ["alarms", "STRINGS"],
                                            ["handover", "HANDOVER_STRINGS"],
                                            ["health", "HEALTH_STRINGS"],
                                            ["hazards", "HAZARD_STRINGS"],
                                            ["bypasses", "BYPASS_STRINGS"],
                                            ["supervise", "SUPERVISE_STRINGS"]]) {
                  const d = (await import(`/static/${file}.js`))[name];
                  const zh = Object.keys(d.zh).filter((k) => !names.test(k));
                  const en = Object.keys(d.en).filter((k) => !names.test(k));
                  found[file] = [zh.filter((k) => !(k in d.en)), en.filter((k) => !(k in d.zh))];
                }
                return found;
            })()"""
        )
    files = ("app", "alarms", "handover", "health", "hazards", "bypasses", "supervise")
    assert apart == {f: [[], []] for f in files}, apart


async def test_an_alarm_awaiting_the_centres_review_shows_approve_and_return_to_the_centre_only():
    """An enterprise's close of a red alarm waits for the monitoring centre's review (待审核):
    the centre's key (`review` in its alarm actions) has Approve 批准销号 and Return 退回 on the
    row, the form shows what the enterprise said and needs the centre's note, and the hub is
    asked at `.../review`; the enterprise's own key has neither button."""
    waiting = shaped(1, "a", "red", disposal="review", **RECOVERED)
    waiting["events"].append(
        {
            **waiting["events"][0],
            "id": 11,
            "kind": "submitted",
            "actor": "coal",
            "comment": "通风恢复",
        }
    )
    centre = Key(sensors=[sensor("a")], alarms=[waiting], actions=[*ACTIONS, "review"])
    firm = Key(sensors=[sensor("a")], alarms=[dict(waiting)], role="enterprise", tenants=["t"])
    hub = FakeHub(keys={"c": centre, "e": firm})
    form = "tr.extra[data-for='1'] form.act-form[data-form=return]"
    async with serving(hub), page(hub, "e", script=ZH) as browser:
        await browser.wait_for(f"{row(1, '.disp')}?.dataset.disposal === 'review'", 5)
        assert await browser.js(f"{row(1, '.disp')}.textContent") == "待审核"
        acts = await browser.js(
            f"[...{row(1)}.querySelectorAll('button.act')].map((b) => b.dataset.act)"
        )
        assert "approve" not in acts and "return" not in acts and "close" not in acts, acts
    async with serving(hub), page(hub, "c", script=ZH) as browser:
        await browser.wait_for(f"!!{row(1, 'button[data-act=return]')}", 5)
        assert await browser.js(f"{row(1, 'button[data-act=approve]')}.textContent") == "批准销号"
        assert await browser.js(f"{row(1, 'button[data-act=return]')}.textContent") == "退回"
        await browser.js(f"{row(1, 'button[data-act=return]')}.click()")
        await browser.wait_for(f"!!{q(form)}", 5)
        assert "coal：通风恢复" in await browser.js(f"{q(form)}.innerText")
        assert await browser.js(f"{q(form + ' [name=note]')}.required")
        await browser.js(f"{q(form + ' [name=note]')}.value = '  '")
        await browser.js(f"{q(form + ' button[type=submit]')}.click()")  # spaces: no note
        await browser.wait_for(f"{row(1, '.msg')}.textContent.includes('审核意见')", 5)
        assert hub.reviewed == []
        await browser.js(f"{q(form + ' [name=note]')}.value = '未附检测记录'")
        await browser.js(f"{q(form + ' button[type=submit]')}.click()")
        await browser.wait_for(f"{row(1, '.disp')}?.dataset.disposal === 'verified'", 5)
        assert hub.reviewed == [(1, {"decision": "return", "note": "未附检测记录"})]


# the page reads the hub's readiness every 15 s: every 300 ms here
FAST_HEALTH = (
    "const __si = window.setInterval.bind(window);"
    "window.setInterval = (f, ms, ...a) => __si(f, ms === 15000 ? 300 : ms, ...a);"
)


async def test_the_hubs_own_health_is_a_banner_naming_the_cause_and_since_when_until_ready():
    """A sysadmin's role-play: during a broker outage the page said 实时 live (its own stream was
    up) over a hub that heard nothing. While the hub is not ready, a banner at the top names the
    cause in the operator's language and since when; a cause the page does not know reads the
    hub's reason; a degraded hub (judging, the store refusing) says so apart; it goes once the
    hub is ready."""
    since = now_ms() - 95_000
    hub = FakeHub(
        keys={"k": Key(sensors=[sensor("a")])},
        readiness={
            "status": "not_ready",
            "cause": "broker",
            "reason": "not subscribed to the broker: no reading is heard",
            "since_ms": since,
        },
    )
    banner = q("#hub-health")
    text = f"{banner}.textContent"
    async with serving(hub), page(hub, "k", script=ZH + FAST_HEALTH) as browser:
        await browser.wait_for(f"!{banner}.hidden", 5)
        assert (
            await browser.js(text)
            == f"告警中心未收到数据：消息代理不可达（自 {cst(since)} 起，北京时间）"
        )
        assert await browser.js(f"{banner}.dataset.cause") == "broker"
        assert await browser.js(f"{q('#live')}.textContent") == "实时"  # the stream's, apart
        # at the top of the page, over the alarm list
        top = f"{q('#alarms-panel')}.getBoundingClientRect().top"
        above = f"{banner}.getBoundingClientRect().bottom <= {top}"
        assert await browser.js(above)
        await browser.js(f"{q('#lang')}.click()")
        assert await browser.js(text) == (
            f"The hub is not receiving data: the broker is unreachable (since {cst(since)} CST)"
        )
        # a cause this page does not know (a hub newer than it): the hub's own words
        hub.readiness = {
            "status": "not_ready",
            "cause": "hub_clock_behind",
            "reason": "the hub's clock is 12 min behind the gateways: every reading is refused",
            "since_ms": since,
        }
        await browser.wait_for(f"{text}.includes('12 min behind the gateways')", 5)
        assert (await browser.js(text)).startswith("The hub is not ready: the hub's clock is 12")
        # degraded: judged, only not stored
        hub.readiness = {
            "status": "degraded",
            "cause": "influxdb_auth",
            "reason": "the store refuses writes (influxdb_auth: ...)",
            "since_ms": since,
        }
        await browser.wait_for(f"{banner}.dataset.status === 'degraded'", 5)
        assert (await browser.js(text)).startswith(
            "Readings are not being stored (alarms are still judged; the readings wait in the "
            "disk spool): InfluxDB refuses the hub's password or token"
        )
        await browser.js(f"{q('#lang')}.click()")
        assert "InfluxDB 拒绝告警中心的密码或令牌" in await browser.js(text)
        hub.readiness = dict(READY)
        await browser.wait_for(f"{banner}.hidden", 5)
        assert await browser.js(text) == ""
        # an enterprise's key reads the code of a cause the page does not know, not the reason
        said = await browser.js(
            """(async () => {
              const m = await import('/static/health.js');
              const t = (k) => m.HEALTH_STRINGS.zh[k] ?? k;
              return m.healthText({status: 'not_ready', cause: 'other', reason: null,
                                   since_ms: null}, t);
            })()"""
        )
        assert said == "告警中心未就绪：原因代码 other，详情请询问监测中心"
    assert hub.count("/api/v1/readiness") >= 4


async def test_an_active_safety_alarm_reads_its_kind_level_and_who_judged_it():
    """The 苏标 ADAS and DSM alarms (rule active_safety, levels level1 / level2) showed their
    raw names, `adas_forward_collision level1`: the row reads 前向碰撞报警 一级 (主动安全), in
    English "forward collision warning level 1 (active safety)"; and every kind the hub raises
    has a Chinese label (telemetry.alarmkinds)."""
    fcw = {
        **alarm(1, "coach-07-speed"),
        "side": "adas_forward_collision",
        "rule": "active_safety",
        "level_name": "level2",
        "tier": "orange",
    }
    fcw["events"] = [{**fcw["events"][0], "level_name": "level2"}]
    hub = FakeHub(keys={"k": Key(sensors=[sensor("coach-07-speed")], alarms=[fcw])})
    level = f"{row(1, 'td:nth-child(3)')}.textContent"
    async with serving(hub), page(hub, "k", script=ZH) as browser:
        await browser.wait_for(f"!!{row(1)}", 5)
        assert await browser.js(level) == "前向碰撞报警 二级 (主动安全)"
        await browser.js(f"{q('#lang')}.click()")
        await browser.wait_for(
            f"{level} === 'forward collision warning level 2 (active safety)'", 5
        )
        missing = await browser.js(
            f"""(async () => {{
              const m = await import('/static/alarms.js');
              const t = (k) => m.STRINGS.zh[k] ?? k;
              // a kind's own label, or its level's where the level says it all (a terminal's)
              const named = (k) => `kind_${{k}}` in m.STRINGS.zh || `lvl_${{k}}` in m.STRINGS.zh;
              return {json.dumps([k for k in ALARM_KINDS if k not in ("above", "below")])}
                .filter((k) => !named(k));
            }})()"""
        )
    assert missing == [], missing
