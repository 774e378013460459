"""Configuration changes while readings stream in, against real Mosquitto and InfluxDB (the
production store, with its disk spool): every reading published is stored exactly once, under
the right sensor, and nothing is dead-lettered, however the changes fall between batches."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiomqtt
import httpx
import numpy as np
from test_registry_api import DEV, KEYS, auth, build

from hazardhub.hub import HubSettings
from telemetry.codec import TelemetryBatch, encode
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, mine_registry, running_hub
from services import free_port

L = TopicLayout()
KEYS_SENT = ("ch4_t0", "ch4_t1", "ch4_t2", "co")


def batch(seq: int, ts: int) -> bytes:
    n = len(KEYS_SENT)
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            11,
            seq,
            KEYS_SENT,
            np.arange(n, dtype=np.uint16),
            np.full(n, ts, np.int64),
            np.array([0.3, 0.4 + (seq % 10) * 0.1, 0.2, 5.0]),  # T1 crosses 1.0 % now and then
            np.zeros(n, np.uint8),
        )
    )


async def test_changes_under_a_stream_lose_and_duplicate_nothing(mosquitto, influxdb, tmp_path):
    from hazardhub.hub import Hub

    database = "reload_" + secrets.token_hex(4)
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(
            data_dir=tmp_path / "data",
            broker_port=mosquitto.port,
            api_port=free_port(),
            influx_url=influxdb.url,
            influx_database=database,
            influx_retention=None,
        ),
        extra_keys=KEYS,
        build=build,
    )
    n = 600
    start = time.time_ns() // 1_000_000 - 60_000
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.settings.api_port}", timeout=30)

        async def publish() -> None:
            topic = L.telemetry("north-coal", "face-1301", "kj-sub-3")
            for seq in range(n):
                await mq.publish(topic, batch(seq, start + seq * 100), qos=1)
                if seq % 20 == 0:
                    await asyncio.sleep(0.1)  # about 3 s in all: the changes fall inside

        async def change() -> int:
            url = f"{DEV}/kj-sub-3/sensors/ch4-t1"
            spec = (await api.get(url, headers=auth())).json()
            done = 0
            for i in range(6):
                judged.append(hub.metrics.total("hazardhub_readings_total"))
                if i % 3 == 0:  # a new device before kj-sub-3 renumbers every sensor after it
                    dev = {
                        "id": f"aa-new-{i}",
                        "profile": "coal-substation",
                        "modbus": {"host": "127.0.0.1", "port": 1502, "unit": 9},
                        "sensors": [{"id": f"x-{i}", "point": "ch4_t0", "kind": "methane"}],
                    }
                    r = await api.post(DEV, json=dev, headers=auth())
                elif i % 3 == 1:
                    r = await api.put(url, json={**spec, "tag": f"T1-{i}"}, headers=auth())
                else:
                    r = await api.delete(f"{DEV}/aa-new-{i - 2}", headers=auth())
                assert r.status_code in (200, 201, 204), r.text
                done += 1
                await asyncio.sleep(0.25)
            return done

        judged: list[float] = []
        changes, _ = await asyncio.gather(change(), publish())
        assert changes == 6
        # the changes came while readings were being judged, not before or after the stream
        assert sum(0 < j < n * len(KEYS_SENT) for j in judged) >= 4, judged

        async def all_stored() -> bool:
            got = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return len(got) >= n

        await eventually(all_stored, 60, "every batch in InfluxDB")
        got = await hub.store.count_by_seq("north-coal", "kj-sub-3")
        assert got == {(11, seq): len(KEYS_SENT) for seq in range(n)}
        assert hub.statedb.dead_letters() == []
        # each reading under its own sensor: T1's values are T1's, whatever the numbering was
        t1 = hub.registry.sensor("ch4-t1")
        assert t1 is not None
        rows = await hub.store.history(t1.index, start, start + n * 100)
        assert len(rows) == n
        assert {round(v, 6) for _, v in rows} == {round(0.4 + k * 0.1, 6) for k in range(10)}
        co = hub.registry.sensor("co")
        assert co is not None
        assert {v for _, v in await hub.store.history(co.index, start, start + n * 100)} == {5.0}
        metrics = hub.metrics.render()
        assert "hazardhub_config_reloads_total 6" in metrics
        await api.aclose()
