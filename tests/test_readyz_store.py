"""`/readyz` says when the hub judges nothing because the store refuses its readings
(InfluxDB away and the disk spool full: ingest waits, no alarm is judged), and why; it answered
"ready" throughout (helper-91's reliability sign-off)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest
from test_bad_input import GOOD_TOPIC, batch

import ingest.service
from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from telemetry.config import ApiKeySpec

from e2e_helpers import eventually, mine_registry, running_hub
from services import InfluxService, free_port

ADMIN = "hh_admin-readyz"  # the centre's admin reads the reason in full; a probe, the cause


@pytest.mark.parametrize(
    ("held_s", "stalled_s", "said", "cause"),
    [
        (1.0, 1000.0, "the store has refused readings since ", "store_held"),
        # a batch waiting to be judged, whatever holds it (helper-107: a flood of one tenant's
        # alarms held every tenant's judging for minutes, and /readyz said ready)
        (1000.0, 1.0, "a batch taken ", "ingest_stalled"),
    ],
)
async def test_readyz_says_the_store_holds_ingest_until_it_takes_readings_again(
    mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_s, stalled_s, said, cause
) -> None:
    monkeypatch.setattr(ingest.service, "STORE_HELD_S", held_s)
    monkeypatch.setattr(ingest.service, "STALLED_S", stalled_s)
    influx = InfluxService(tmp_path / "influxdb")  # not started yet: InfluxDB away
    api_port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(
            data_dir=tmp_path / "hub",
            broker_port=mosquitto.port,
            api_port=api_port,
            influx_url=influx.url,
            spool_max_bytes=600,  # a batch or two's rows
        ),
        extra_keys=[ApiKeySpec(name="admin", sha256=hash_key(ADMIN), role="admin")],
    )
    try:
        async with (
            running_hub(hub),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as api,
        ):
            assert (await api.get("/readyz")).text == "ready\n"
            now = time.time_ns() // 1_000_000
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
                for seq in range(10):
                    await mq.publish(GOOD_TOPIC, batch(seq, now, ts=now - 40 + seq), qos=1)
                    await asyncio.sleep(0.1)  # a flush each

            async def refused() -> httpx.Response | None:
                r = await api.get("/readyz")
                return r if r.status_code == 503 else None

            r = await eventually(refused, 20, "/readyz to say the store holds ingest")
            assert r.text == f"not ready: {cause}\n", r.text
            r = await api.get("/readyz", headers={"Authorization": f"Bearer {ADMIN}"})
            assert r.status_code == 503 and r.text.startswith(f"not ready: {said}"), r.text

            influx.start()  # InfluxDB back: the spool drains, ingest goes on

            async def ready() -> bool:
                return (await api.get("/readyz")).status_code == 200

            await eventually(ready, 30, "/readyz ready again")

            async def all_stored() -> bool:
                stored = await hub.store.count_by_seq("north-coal", "kj-sub-3")
                return {s for _, s in stored} == set(range(10))

            await eventually(all_stored, 30, "every batch held stored")
    finally:
        influx.stop()


def test_the_cause_code_says_nothing_of_the_reasons_words() -> None:
    """The reasons `IngestService.not_ready` gives, as a probe without a key reads them: the
    code alone (a spool folder's path, InfluxDB's host and words are the centre's admin's)."""
    from api.readiness import UNKNOWN, cause_code

    spool = "/var/lib/hazardhub/spool"
    for why, code in (
        ("not subscribed to the broker: no reading is heard", "broker"),
        (
            f"the store refuses writes (spool_disk: spool {spool}: [Errno 28] No space left on "
            "device): readings are judged and kept in the disk spool until it is fixed",
            "spool_disk",
        ),
        (
            "the store refuses writes since 2026-12-01T12:00:00+00:00 (influxdb_auth: influxdb "
            "write: HTTP 401: authorization failed): ingest holds the messages",
            "influxdb_auth",
        ),
        ("the store has refused readings since 2026-12-01T12:00:00+00:00 (7 s): ...", "store_held"),
        ("a batch taken 61 s ago is not judged yet: alarms are that late", "ingest_stalled"),
        (f"something new at {spool} on db.example:8086", UNKNOWN),
        (f"the store refuses writes (Spool {spool}: x)", UNKNOWN),
    ):
        assert cause_code(why) == code, why
