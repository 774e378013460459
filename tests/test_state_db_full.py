"""The state database's disk full (helper-195's sysadmin): `/readyz` said ready for a minute, then
`ingest_stalled` (its reason not naming `state.db`), the log had a line every second and another
every 5 s, and nothing said when it worked again. Now `/readyz` says `state_db` (the reason: the
database and SQLite's words) from the first failed write, the failures are said at once and then
once a minute, and its recovery once ("works again after N failure(s) over T s").

The database is made full for real: `PRAGMA max_page_count` on the hub's own connection, at the
pages it has, so that SQLite refuses to grow it ("database or disk is full"), as a full disk
does; no mount needed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt
import httpx
import pytest
from test_bad_input import GOOD_TOPIC

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from ingest.statedbfault import StateDbFault
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port

ADMIN = "hh_admin-statedb"


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_full_state_database_is_named_by_readyz_and_said_at_once_then_bounded(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    api_port = free_port()
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="admin", sha256=hash_key(ADMIN), role="admin")],
    )
    db = hub.statedb._db

    def pages(limit: int | None) -> None:
        with hub.statedb._lock:
            if limit is None:
                limit = int(db.execute("PRAGMA page_count").fetchone()[0])
            db.execute(f"PRAGMA max_page_count = {limit}")

    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        assert (await api.get("/readyz")).text == "ready\n"
        pages(None)  # full: the database may not grow
        # garbage is kept as a dead letter with its payload: pages the database has not
        await mq.publish(GOOD_TOPIC, b"\x00" * 20_000, qos=1)

        async def refused() -> httpx.Response | None:
            r = await api.get("/readyz")
            return r if r.status_code == 503 else None

        r = await eventually(refused, 5, "/readyz to name the state database")
        assert r.text == "not ready: state_db\n", r.text
        r = await api.get("/readyz", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.text.startswith("not ready: the state database (state.db"), r.text
        assert "database or disk is full" in r.text, r.text
        await asyncio.sleep(4)  # tried again at 0.2, 0.4, 0.8, 1.6 s ...
        retries = hub.metrics.get("hazardhub_store_retries_total")
        assert retries >= 4, retries
        said = _said(caplog, "state database")
        assert len(said) == 1, said  # at once; then once a minute, not at each try
        assert said[0].startswith("state database (state.db) failed: dead letter not kept")

        pages(1_000_000)  # space again

        async def kept() -> list | None:
            return hub.statedb.dead_letters() or None

        await eventually(kept, 10, "the dead letter kept once there is space")
        await eventually(refused_not(api), 5, "/readyz ready again")
        (back,) = _said(caplog, "works again")
        assert back.startswith("state database (state.db) works again after "), back


def refused_not(api: httpx.AsyncClient) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        return (await api.get("/readyz")).status_code == 200

    return ready


def test_failures_are_said_once_a_minute_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    now = [1000.0]
    fault = StateDbFault(clock=lambda: now[0], wall=lambda: 1_800_000_000_000)
    for _ in range(150):  # a tick a second, two and a half minutes
        fault.failed("the clock's tick not recorded", OSError("database or disk is full"))
        now[0] += 1
    said = _said(caplog, "state database")
    assert len(said) == 3, said  # at once, then after a minute, then after two
    assert "still fails: 60 failure(s) in the last 60 s" in said[1], said
    assert "database or disk is full" in (fault.not_ready() or "")
    fault.failed("dead letter not kept", OSError("database or disk is full"))
    fault.worked("the clock's tick not recorded")  # the dead letter not yet
    assert not _said(caplog, "works again")
    fault.worked("dead letter not kept")
    fault.worked("dead letter not kept")
    (back,) = _said(caplog, "works again")
    assert back == "state database (state.db) works again after 151 failure(s) over 150 s"
    assert fault.not_ready() is None
