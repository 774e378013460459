"""The hub's clock behind its gateways went blind with no sign (helper-195's sysadmin): every
reading refused as `future_time`, nothing logged, `/readyz` ready, the dead letter blaming the
gateway. Now the refusals are said (once, then at most once a minute; most senders ahead by a
similar amount: the hub's clock is probably behind), `/readyz` says `future_time` while most of
what arrives is refused so, and both clear when the readings are in time again."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import aiomqtt
import httpx
import numpy as np
import pytest
from test_bad_input import GOOD_TOPIC

import ingest.futuretime
from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from ingest.futuretime import FutureWatch
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port

ADMIN = "hh_admin-future"


def _batch(gateway: str, seq: int, ts: int) -> bytes:
    return encode(
        TelemetryBatch(
            gateway,
            "kj-sub-3",
            int(gateway[2:]),  # an epoch each: their numbers are their own
            seq,
            ("ch4_t1",),
            np.zeros(1, np.uint16),
            np.array([ts], np.int64),
            np.array([0.4]),
            np.zeros(1, np.uint8),
        )
    )


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_readings_from_the_future_are_said_and_make_the_hub_not_ready_until_in_time(
    mosquitto: MosquittoService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    monkeypatch.setattr(ingest.futuretime, "WINDOW_MS", 3000)  # the test's patience
    api_port = free_port()
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="admin", sha256=hash_key(ADMIN), role="admin")],
    )
    metrics = hub.metrics
    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        assert (await api.get("/readyz")).text == "ready\n"
        # two gateways, both 60 s ahead of the hub: the hub's clock behind
        for seq in range(6):
            ahead = time.time_ns() // 1_000_000 + 60_000
            for gw in ("gw1", "gw2"):
                await mq.publish(GOOD_TOPIC, _batch(gw, seq, ahead + seq), qos=1)

        async def refused() -> bool:
            return metrics.get("hazardhub_readings_rejected_total", reason="future_time") == 12

        await eventually(refused, 10, "the readings refused as future_time")
        r = await api.get("/readyz")
        assert (r.status_code, r.text) == (503, "not ready: future_time\n")
        r = await api.get("/readyz", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.text.startswith("not ready: readings from the future: 12 of the 12"), r.text
        assert "the HUB's clock is probably behind by about 60 s" in r.text, r.text
        # said at once (gw1's first message: one sender heard), not per message
        (said,) = _lines(caplog, "refused as from the future")
        assert "1 reading(s) refused" in said, said
        # 60 s ahead when published, less the time the hub took to handle it (a loaded machine:
        # 59 s was said once after 0.5 s)
        ahead = re.search(r"north-coal/gw1, (\d+) s ahead", said)
        assert ahead is not None and 55 <= int(ahead.group(1)) <= 60, said
        assert "the sender's clock or the hub's is off" in said, said
        # the dead letter names both clocks

        async def kept() -> list | None:  # counted when handled, kept when the flush ends
            return hub.statedb.dead_letters() or None

        letters = await eventually(kept, 10, "the refused messages kept as dead letters")
        assert all(
            "ahead of the hub's clock" in d.reason and "the sender's or the hub's clock" in d.reason
            for d in letters
        ), letters

        # the readings in time again: ready, and said so once the window has none refused
        for seq in range(6, 60):
            await mq.publish(GOOD_TOPIC, _batch("gw1", seq, time.time_ns() // 1_000_000), qos=1)
            await asyncio.sleep(0.2)
            if (await api.get("/readyz")).status_code == 200 and _lines(caplog, "in time again"):
                break
        assert (await api.get("/readyz")).text == "ready\n"
        (back,) = _lines(caplog, "readings are in time again")
        assert "12 refused" in back, back


def test_one_sender_ahead_is_its_clock_most_ahead_alike_is_the_hubs() -> None:
    watch = FutureWatch(30_000, window_ms=30_000, say_every_ms=60_000)
    t = 1_000_000_000
    for i in range(10):
        watch.arrived(f"t/gw{i}", 1, 0, 0, t)
    watch.arrived("t/gw0", 0, 5, 3_600_000, t + 1)
    assert "1 of the 10 sender(s)" in watch.whose(t + 2)
    assert "their clocks are probably ahead" in watch.whose(t + 2)
    assert watch.not_ready(t + 2) is None  # most of what arrives is judged
    for i in range(1, 8):
        watch.arrived(f"t/gw{i}", 0, 5, 45_000 + i * 100, t + 3)
    assert "HUB's clock is probably behind" not in watch.whose(t + 4)  # 45 s and an hour
    watch.arrived("t/gw0", 0, 5, 45_000, t + 5)
    assert "8 of the 10 sender(s)" in watch.whose(t + 6)
    assert "the HUB's clock is probably behind by about 45 s" in watch.whose(t + 6)
    assert (watch.not_ready(t + 6) or "").startswith("readings from the future: 45 of the 55")
    # senders not heard for the window are forgotten; what arrived then no longer counts
    assert watch.not_ready(t + 60_000) is None


def test_refusals_are_said_at_once_then_once_a_minute_then_in_time_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    watch = FutureWatch(30_000, window_ms=30_000, say_every_ms=60_000)
    t = 1_000_000_000
    for i in range(120):  # two minutes, a message a second, all 45 s ahead
        watch.arrived("t/gw1", 0, 2, 45_000, t + i * 1000)
    said = _lines(caplog, "refused as from the future")
    assert len(said) == 2, said  # at once, then a minute later with the count between
    assert said[0].startswith("2 reading(s)") and said[1].startswith("120 reading(s)"), said
    watch.arrived("t/gw1", 3, 0, 0, t + 130_000)
    assert not _lines(caplog, "in time again")  # a refusal within the window
    watch.arrived("t/gw1", 3, 0, 0, t + 150_000)
    (back,) = _lines(caplog, "in time again")
    assert "240 refused over 119 s" in back, back
