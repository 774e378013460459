"""The `bypass_unapproved` alarm on a whole hub (real broker, real state database): an SIS
loop's bypass flag published as telemetry, unapproved past `approve_within_s` (1 s here) ->
raised (orange); an approval recorded through the API by the enterprise's key -> cleared at
once, the journal naming the approver and the party that recorded it; the approval's
`until` passing while the loop is still bypassed -> raised again, saying it expired; the hub
restarted -> nothing raised twice; the bypass ended -> cleared."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiomqtt
import httpx
import numpy as np
from test_api_alarms import KEYS
from test_bypass_approvals import CONFIG

from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_profiles
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import ROOT, eventually, running_hub
from services import free_port

CHEM = {"Authorization": "Bearer k-chem"}


class Flag:
    """The loop's bypass flag over the broker, each reading a new message (seq) and time."""

    def __init__(self, mq: aiomqtt.Client) -> None:
        self.mq, self.topic = mq, TopicLayout().telemetry("acme-chem", "plant", "sis-1")
        self.seq, self.ts = 0, 0

    async def send(self, value: float) -> None:
        self.seq += 1
        self.ts = max(self.ts + 1, time.time_ns() // 1_000_000)
        batch = TelemetryBatch(
            "gw",
            "sis-1",
            1,
            self.seq,
            ("bypassed",),
            np.zeros(1, np.uint16),
            np.array([self.ts], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
        )
        await self.mq.publish(self.topic, encode(batch), qos=1)


async def unapproved(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The loop's bypass_unapproved alarms, oldest first, each with its journal."""
    r = await api.get("/api/v1/alarms", params={"limit": 100}, headers=CHEM)
    r.raise_for_status()
    ids = sorted(a["id"] for a in r.json() if a["side"] == "bypass_unapproved")
    return [(await api.get(f"/api/v1/alarms/{i}", headers=CHEM)).json() for i in ids]


async def test_an_unapproved_bypass_raises_an_approval_clears_its_expiry_raises_again(
    mosquitto, tmp_path
):
    config = parse_document(CONFIG.format(within=1), HubConfig, "bypass.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    registry = build_registry(config, profiles, packs, "bypass.yaml")
    port = free_port()
    settings = HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as mq,
    ):
        flag = Flag(mq)
        async with running_hub(Hub(registry, settings, extra_keys=KEYS)):
            await flag.send(1.0)  # bypassed: told at once (blue), no approval

            async def raised(n: int) -> list[dict[str, Any]] | None:
                found = await unapproved(api)
                return found if len(found) == n and found[-1]["state"] == "active" else None

            (first,) = await eventually(lambda: raised(1), 10, "bypass_unapproved raised")
            assert (first["tier"], first["sensor"], first["level_name"]) == (
                "orange",
                "sis-bypass",
                "bypass_unapproved",
            )
            assert "no approval given within 1 s" in first["events"][0]["comment"]
            started = first["started_ts"]

            # an approval covering now (4 s): cleared at once, by the record itself
            now = time.time_ns() // 1_000_000
            body = {
                "sensor": "sis-bypass",
                "approved_by": "张工",
                "reason": "切断阀检修",
                "measures": "专人监护",
                "valid_from": now - 1000,
                "until": now + 4000,
            }
            r = await api.post("/api/v1/bypass-approvals", json=body, headers=CHEM)
            assert r.status_code == 201, r.text
            assert r.json()["alarm_events"] == 1
            assert r.json()["approval"]["party"] == "enterprise"
            (first,) = await unapproved(api)
            assert first["state"] == "cleared"
            assert first["events"][-1]["kind"] == "cleared"
            # the centre sees in the journal who approved it and which party recorded it
            said = first["events"][-1]["comment"]
            assert "by 张工" in said and "企业 the enterprise's key chem" in said, said

            # its until passes, the loop still bypassed: raised again, stamped at the until
            found = await eventually(lambda: raised(2), 15, "raised again at the expiry")
            again = found[-1]
            assert again["started_ts"] == body["until"]
            approval = r.json()["approval"]["id"]
            assert f"approval #{approval} expired" in again["events"][0]["comment"]
            before = await unapproved(api)

        # restarted on the same state: nothing raised twice over a few ticks
        async with running_hub(Hub(registry, settings, extra_keys=KEYS)):
            await asyncio.sleep(3)  # (real ticks of a real hub: once a second)
            assert await unapproved(api) == before

            # the bypass ends: cleared, at the flag's reading
            await flag.send(0.0)

            async def cleared() -> list[dict[str, Any]] | None:
                found = await unapproved(api)
                return found if found[-1]["state"] == "cleared" else None

            found = await eventually(cleared, 10, "cleared at the bypass's end")
            assert len(found) == 2
            assert found[-1]["ended_ts"] == flag.ts
            assert found[0]["started_ts"] >= started
