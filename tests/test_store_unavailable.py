"""A store that refuses writes for a cause of its surroundings, not of the data (InfluxDB's
password rotated under the hub: 401; the embedded store's disk full: SQLITE_FULL) is an outage:
no reading becomes a dead letter, `/readyz` says the cause, and once it is fixed everything held
is stored. InfluxDB's refusals are spooled, so methane readings are judged meanwhile; the
embedded store holds the MQTT acknowledgements (the broker keeps the messages) and judges them
once it takes them. They were dead letters, judged by nobody, while `/readyz` said ready
(helper-150: a 2.0 %CH4 reading raised no alarm)."""

from __future__ import annotations

import logging
import sqlite3
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiomqtt
import httpx
import numpy as np
import pytest
from test_bad_input import GOOD_TOPIC

import ingest.service
from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry, running_hub
from services import InfluxService, MosquittoService, free_port


def _readings(seq: int, value: float, n: int = 1) -> bytes:
    """`n` readings of T0 methane at `value` a ms apart, those of a later `seq` (< 8) later, all
    in the last seconds (device kj-sub-3, epoch 5)."""
    now = time.time_ns() // 1_000_000
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            5,
            seq,
            ("ch4_t0",),
            np.zeros(n, np.uint16),
            now - (8 - seq) * n + np.arange(n, dtype=np.int64),
            np.full(n, value),
            np.zeros(n, np.uint8),
        )
    )


def _methane_alarms(hub: Hub) -> list[str]:
    return [a.level_name for a in hub.statedb.active_alarms() if a.sensor == "ch4-t0"]


def _set_password(influx: InfluxService, password: str, now: str) -> None:
    q = urllib.parse.urlencode({"q": f"SET PASSWORD FOR \"hub\" = '{password}'"}).encode()
    auth = urllib.parse.urlencode({"u": "hub", "p": now})
    with urllib.request.urlopen(f"{influx.url}/query?{auth}", data=q, timeout=5) as resp:
        assert resp.status == 200


# the centre's admin reads /readyz's reason in full; anyone else (a probe without a key, an
# operator, a key that does not work) the short cause only (the reason named InfluxDB's host and
# words, a spool folder's path, to anyone who reached the port)
ADMIN, OPERATOR, ENTERPRISE = "hh_admin-readyz", "hh_operator-readyz", "hh_coal-readyz"
KEYS = [
    ApiKeySpec(name="admin", sha256=hash_key(ADMIN), role="admin"),
    ApiKeySpec(name="op", sha256=hash_key(OPERATOR), role="operator"),
    ApiKeySpec(
        name="coal", sha256=hash_key(ENTERPRISE), role="enterprise", tenants=("north-coal",)
    ),
]


async def _readyz(api: httpx.AsyncClient, key: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return await api.get("/readyz", headers=headers)


async def _said_short_to_all_but_the_admin(api: httpx.AsyncClient, cause: str) -> str:
    """The short answer to a probe and to every key but the centre's admin's; the admin's."""
    for key in (None, OPERATOR, ENTERPRISE, "hh_no-such-key", ADMIN + "x"):
        r = await _readyz(api, key)
        assert (r.status_code, r.text) == (503, f"not ready: {cause}\n"), (key, r.text)
    r = await _readyz(api, ADMIN)
    assert r.status_code == 503 and r.text.startswith("not ready: "), r.text
    return r.text


async def test_a_rotated_influxdb_password_spools_and_judges_and_says_not_ready(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    influx = InfluxService(tmp_path / "influx", auth=True).launch()
    try:
        influx.create_admin("hub", "pw-one")
        api_port = free_port()
        hub = Hub(
            mine_registry(free_port(), 1.0),
            HubSettings(
                data_dir=tmp_path / "hub",
                broker_port=mosquitto.port,
                api_port=api_port,
                influx_url=influx.url.replace("http://", "http://hub:pw-one@"),
                influx_database="hh",
            ),
            extra_keys=KEYS,
        )
        caplog.set_level(logging.INFO, logger="ingest")  # (httpx logs URLs: the CLI quiets it)
        async with (
            running_hub(hub),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api,
            aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
        ):
            await mq.publish(GOOD_TOPIC, _readings(0, 0.4), qos=1)

            async def stored(seqs: set[int]) -> bool:
                found = await hub.store.count_by_seq("north-coal", "kj-sub-3")
                return {s for _, s in found} == seqs

            await eventually(lambda: stored({0}), 20, "the first reading stored")
            _set_password(influx, "pw-two", now="pw-one")  # the operator rotates it
            await mq.publish(GOOD_TOPIC, _readings(1, 2.0), qos=1)  # power-cut methane
            await mq.publish(GOOD_TOPIC, _readings(2, 2.2), qos=1)

            async def alarmed() -> list[str]:
                return _methane_alarms(hub)

            # judged although InfluxDB refuses them: they wait in the spool
            assert "power_cut" in await eventually(alarmed, 20, "the methane alarm")

            async def not_ready() -> httpx.Response | None:
                r = await _readyz(api)
                return r if r.status_code == 503 else None

            await eventually(not_ready, 20, "/readyz to say the store refuses writes")
            said = await _said_short_to_all_but_the_admin(api, "influxdb_auth")
            assert "influxdb_auth" in said and "HTTP 401" in said, said
            assert "authorization failed" in said, said  # InfluxDB's words: the admin's only
            assert hub.statedb.dead_letters() == []
            metrics = hub.metrics
            assert metrics.get("hazardhub_messages_rejected_total", reason="store_refused") == 0
            assert metrics.get("hazardhub_readings_total") == 3

            _set_password(influx, "pw-one", now="pw-two")  # the hub's password works again

            async def ready() -> bool:
                return (await _readyz(api)).status_code == 200

            await eventually(ready, 30, "/readyz ready again")
            await eventually(lambda: stored({0, 1, 2}), 30, "every reading spooled stored")
        said = [r for r in caplog.records if "influxdb_auth" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]  # once, not every retry
        assert "pw-one" not in caplog.text and "pw-two" not in caplog.text
    finally:
        influx.stop()


async def test_a_full_disk_holds_the_embedded_store_until_space_is_freed(
    mosquitto: MosquittoService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # said at once, not after STORE_HELD_S like a store that may come back by itself
    monkeypatch.setattr(ingest.service, "STORE_HELD_S", 1000.0)
    api_port = free_port()
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=KEYS,
    )
    store = hub.store

    def cap(conn: sqlite3.Connection) -> None:  # the disk is full: SQLITE_FULL, as ENOSPC gives
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    def free(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA max_page_count = 1073741823")

    async with (
        running_hub(hub),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        await store._run("test", cap)  # type: ignore[attr-defined]
        for seq in range(3):
            await mq.publish(GOOD_TOPIC, _readings(seq, 2.0, n=400), qos=1)

        async def not_ready() -> httpx.Response | None:
            r = await _readyz(api)
            return r if r.status_code == 503 else None

        await eventually(not_ready, 20, "/readyz to say the store refuses writes")
        said = await _said_short_to_all_but_the_admin(api, "sqlite_full")
        assert "sqlite_full" in said and "unacknowledged" in said, said
        assert hub.statedb.dead_letters() == []
        assert hub.metrics.get("hazardhub_store_unavailable_total", cause="sqlite_full") > 0
        assert hub.metrics.get("hazardhub_messages_rejected_total", reason="store_refused") == 0

        await store._run("test", free)  # type: ignore[attr-defined]

        async def ready() -> bool:
            return (await _readyz(api)).status_code == 200

        await eventually(ready, 30, "/readyz ready again")

        async def all_stored() -> bool:
            found = await store.count_by_seq("north-coal", "kj-sub-3")
            return found == {(5, 0): 400, (5, 1): 400, (5, 2): 400}

        await eventually(all_stored, 30, "every reading held stored")

        async def alarmed() -> list[str]:
            return _methane_alarms(hub)

        assert "power_cut" in await eventually(alarmed, 20, "the methane alarm")
        assert hub.statedb.dead_letters() == []
