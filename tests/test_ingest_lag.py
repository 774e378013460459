"""The ingest lag keeps growing while ingest is stuck (helper-149: with the data disk full,
/readyz said "a batch taken 60 s ago is not judged yet" while hazardhub_ingest_lag_seconds read
0.058: set only after a judging, it stood still, and "alert when the lag stays above a minute"
could never fire for a stuck hub)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiomqtt
from test_bad_input import GOOD_TOPIC, batch
from test_store_unavailable import _readings

from e2e_helpers import HubAccess, eventually, mine_registry, running_hub
from services import MosquittoService


def _gauge(text: str, name: str) -> float:
    return float(text.split(f"\n{name} ")[1].split("\n", maxsplit=1)[0])


async def test_the_lag_grows_while_the_store_holds_ingest(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    access = HubAccess()
    hub = access.hub(mine_registry(1502, 1.0), tmp_path, mosquitto.port)
    store = hub.store

    def cap(conn: sqlite3.Connection) -> None:  # the disk is full: SQLITE_FULL
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    def free(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA max_page_count = 1073741823")

    async with (
        running_hub(hub),
        access.client() as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        now = time.time_ns() // 1_000_000
        await mq.publish(GOOD_TOPIC, batch(0, now, ts=now - 100), qos=1)

        async def judged() -> bool:
            return hub.metrics.get("hazardhub_readings_total") >= 1 or bool(
                await store.count_by_seq("north-coal", "kj-sub-3")
            )

        await eventually(judged, 15, "the first batch stored")
        await asyncio.sleep(0.5)
        text = (await api.get("/metrics")).text
        assert _gauge(text, "hazardhub_ingest_lag_seconds") < 3, text

        await store._run("test", cap)  # type: ignore[attr-defined]
        held_at = time.monotonic()
        for seq in range(1, 4):  # more than the pages left take
            await mq.publish(GOOD_TOPIC, _readings(seq, 0.5, n=400), qos=1)

        async def lagging() -> float | None:
            text = (await api.get("/metrics")).text
            lag = _gauge(text, "hazardhub_ingest_lag_seconds")
            return lag if lag >= 3 else None

        first = await eventually(lagging, 20, "the lag to grow while ingest is held", 0.5)
        await asyncio.sleep(1.5)
        text = (await api.get("/metrics")).text
        lag = _gauge(text, "hazardhub_ingest_lag_seconds")
        wait = _gauge(text, "hazardhub_ingest_wait_seconds")
        assert lag >= first + 1 and wait >= first + 1, (first, lag, wait)
        assert lag <= time.monotonic() - held_at + 1, lag

        await store._run("test", free)  # type: ignore[attr-defined]

        async def caught_up() -> float | None:
            text = (await api.get("/metrics")).text
            return hub.ingest._in_flight == {} and _gauge(text, "hazardhub_ingest_wait_seconds")

        # judged once the store takes them: the gauges then say how late that was
        assert await eventually(caught_up, 30, "the held batches judged") >= 3
