"""A gateway whose clock fell back (restarted with its RTC reset: a lower epoch, readings stamped
200 days back) had every reading accepted, stored at the wrong times and never judged, and
nothing said so (helper-150). Now its readings far behind the device's newest judged one are
refused as `clock_behind`: counted, kept as dead letters, said once per device with the gap, the
device counted in `hazardhub_devices_clock_behind` until its clock is back in step."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from test_bad_input import GOOD_TOPIC

from hazardhub.hub import Hub, HubSettings
from telemetry.codec import TelemetryBatch, encode

from e2e_helpers import eventually, mine_registry, running_hub
from services import MosquittoService, free_port

DAY_MS = 86_400_000


def _batch(epoch: int, seq: int, ts: int, value: float) -> bytes:
    return encode(
        TelemetryBatch(
            "gw1",
            "kj-sub-3",
            epoch,
            seq,
            ("ch4_t0",),
            np.zeros(1, np.uint16),
            np.array([ts], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
        )
    )


async def test_a_gateway_clock_gone_back_is_refused_counted_and_said(
    mosquitto: MosquittoService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    metrics = hub.metrics
    now = time.time_ns() // 1_000_000
    epoch = now - 3_600_000  # the gateway started an hour ago
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        await mq.publish(GOOD_TOPIC, _batch(epoch, 0, now, 0.4), qos=1)

        async def judged(n: int) -> bool:
            return metrics.get("hazardhub_readings_total") == n

        await eventually(lambda: judged(1), 10, "the first reading judged")
        # restarted with its clock 200 days behind: its epoch (its start, by its clock) too
        back = now - 200 * DAY_MS
        await mq.publish(GOOD_TOPIC, _batch(back, 0, back + 1000, 2.0), qos=1)
        await mq.publish(GOOD_TOPIC, _batch(back, 1, back + 2000, 2.1), qos=1)

        async def refused() -> bool:
            return metrics.get("hazardhub_readings_rejected_total", reason="clock_behind") == 2

        await eventually(refused, 10, "the readings refused as clock_behind")
        assert metrics.get("hazardhub_devices_clock_behind") == 1

        async def kept() -> list | None:  # counted when handled, kept when the flush ends
            return hub.statedb.dead_letters() or None

        letters = await eventually(kept, 10, "the refused messages kept as dead letters")
        assert all("clock_behind" in d.reason for d in letters), letters
        said = [r.getMessage() for r in caplog.records if "clock fell back" in r.getMessage()]
        assert len(said) == 1, said  # once per device, not every message
        assert "north-coal/face-1301/kj-sub-3" in said[0] and "200.0 days" in said[0]
        assert f"epoch {back} below {epoch}" in said[0]
        stored = await hub.store.count_by_seq("north-coal", "kj-sub-3")
        assert (back, 0) not in stored and (back, 1) not in stored  # not at the wrong times

        # its clock set right (NTP): the device is watched again
        fixed = time.time_ns() // 1_000_000
        await mq.publish(GOOD_TOPIC, _batch(fixed, 0, fixed, 0.5), qos=1)
        await eventually(lambda: judged(2), 10, "the reading of the clock set right judged")
        assert metrics.get("hazardhub_devices_clock_behind") == 0
        assert any("back in step" in r.getMessage() for r in caplog.records)


async def test_a_device_whose_clock_fell_back_raises_its_alarm_across_a_restart(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """The device unwatched raises `clock_behind` (orange, on the device, value: the gap in
    days, stamped with its newest reading taken: from then on it is not watched); a hub
    restarted meanwhile refuses its readings behind that as before (seeded from the alarm); the
    first message in step clears it."""

    def hub() -> Hub:
        return Hub(
            mine_registry(free_port(), 1.0),
            HubSettings(
                data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()
            ),
        )

    def clock_alarms(h: Hub) -> list:
        return [a for a in h.statedb.list_alarms(None) if a.side == 14]

    now = time.time_ns() // 1_000_000
    epoch, back = now - 3_600_000, now - 200 * DAY_MS
    first = hub()
    async with running_hub(first), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        await mq.publish(GOOD_TOPIC, _batch(epoch, 0, now, 0.4), qos=1)

        async def taken() -> bool:  # judged and acknowledged: the device's newest
            return first.pipeline.clocks.floor(("north-coal", "face-1301", "kj-sub-3")) is not None

        await eventually(taken, 10, "the first reading judged")
        await mq.publish(GOOD_TOPIC, _batch(back, 0, back + 1000, 2.0), qos=1)

        async def raised() -> list | None:
            found = [a for a in clock_alarms(first) if a.state == "active"]
            return found or None

        (alarm,) = await eventually(raised, 15, "the clock_behind alarm")
        assert (alarm.sensor, alarm.rule, alarm.tier) == (
            "device:north-coal/face-1301/kj-sub-3",
            "comm_loss",
            "orange",
        )
        assert alarm.started_ts == now and alarm.value is not None and alarm.value > 199.9
        assert "NTP" in alarm.action
    second = hub()
    async with running_hub(second), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        await mq.publish(GOOD_TOPIC, _batch(back, 1, back + 2000, 2.1), qos=1)

        async def refused() -> bool:
            return (
                second.metrics.get("hazardhub_readings_rejected_total", reason="clock_behind") == 1
            )

        await eventually(refused, 10, "refused again after the restart")
        fixed = time.time_ns() // 1_000_000
        await mq.publish(GOOD_TOPIC, _batch(fixed, 0, fixed, 0.5), qos=1)

        async def cleared() -> list | None:
            done = [a for a in clock_alarms(second) if a.state == "cleared"]
            return done or None

        (done,) = await eventually(cleared, 15, "the clock_behind alarm cleared")
        assert done.id == alarm.id and done.ended_ts == fixed


async def test_a_clock_gone_back_while_the_hub_was_stopped_is_refused(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """helper-158: the marks were in memory only; a hub restarted (an upgrade, a power cut)
    took a gateway's readings 200 days back (methane at 2.0 %), stored them late and judged
    none. The device's newest judged reading comes from the restored analytics state."""

    def hub() -> Hub:
        return Hub(
            mine_registry(free_port(), 1.0),
            HubSettings(
                data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()
            ),
        )

    now = time.time_ns() // 1_000_000
    first = hub()
    async with running_hub(first), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        await mq.publish(GOOD_TOPIC, _batch(now - 3_600_000, 0, now, 0.4), qos=1)

        async def judged() -> bool:
            return first.metrics.get("hazardhub_readings_total") == 1

        await eventually(judged, 10, "the first reading judged")
    back = now - 200 * DAY_MS
    second = hub()
    async with running_hub(second), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        for seq in range(3):
            await mq.publish(GOOD_TOPIC, _batch(back, seq, back + 1000 * seq, 2.0), qos=1)

        async def refused() -> bool:
            got = second.metrics.get("hazardhub_readings_rejected_total", reason="clock_behind")
            return got == 3

        await eventually(refused, 10, "the readings 200 days back refused")
        stored = await second.store.count_by_seq("north-coal", "kj-sub-3")
        assert all(epoch != back for epoch, _ in stored), stored


async def test_a_backlog_of_a_session_the_hub_knows_is_stored_late_not_refused(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """helper-158: a message of the same gateway session, older than the newest judged (a
    store-and-forward logger, a second uplink) with readings 90 minutes old was refused as a
    clock gone back, and an alarm raised and cleared. It is stored (late) as ever; the clock is
    a suspect only for a message newer than the newest of its session, or of a session unknown."""
    hub = Hub(
        mine_registry(free_port(), 1.0),
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    now = time.time_ns() // 1_000_000
    epoch = now - 3 * 3_600_000
    async with running_hub(hub), aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
        await mq.publish(GOOD_TOPIC, _batch(epoch, 5, now, 0.4), qos=1)

        async def taken() -> bool:
            return hub.pipeline.clocks.floor(("north-coal", "face-1301", "kj-sub-3")) is not None

        await eventually(taken, 10, "the newest reading judged")
        await mq.publish(GOOD_TOPIC, _batch(epoch, 4, now - 90 * 60_000, 1.6), qos=1)
        await mq.publish(GOOD_TOPIC, _batch(epoch, 6, now + 1000, 0.4), qos=1)

        async def stored() -> dict | None:
            got = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return got if len(got) == 3 else None

        seqs = await eventually(stored, 10, "the three batches stored")
        assert sorted(s for _, s in seqs) == [4, 5, 6]
        assert hub.metrics.get("hazardhub_readings_rejected_total", reason="clock_behind") == 0
        assert hub.metrics.get("hazardhub_devices_clock_behind") == 0
        assert [a for a in hub.statedb.list_alarms(None) if a.side == 14] == []
