"""A gateway's drop report (its spool dropped batches at its size or age limit) becomes a
`data_lost` alarm of the device or vehicle at the hub: the report read strictly (and fuzzed), the
pipeline's attribution, the alarm book's moment alarm recorded once, and the whole path from a
real spool overflowing during a broker outage to the hub's API (real Mosquitto)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.alarms import AlarmBook
from alerts.gatewayalarms import DataLoss
from alerts.statedb import StateDB
from alerts.table import compile_table
from gateway.spool import Spool
from ingest.dropreport import read_drop_report
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from telemetry.codec import TelemetryBatch, encode
from telemetry.quality import Quality
from telemetry.topics import TopicLayout

from e2e_helpers import HubAccess, coal_uplink, eventually, get_json, mine_registry, running_hub
from notify_rig import Rig, told

T0 = 1_764_400_000_000
DEVICE = "device:north-coal/face-1301/kj-sub-3"
REPORT = {
    "gateway": "gw1",
    "device": "kj-sub-3",
    "batches": 35,
    "readings": 175,
    "first_created": T0,
    "last_created": T0 + 35_000,
    "reason": "spool full",
}


def test_a_drop_report_is_read_strictly() -> None:
    got = read_drop_report(orjson.dumps(REPORT), "gw1")
    assert (got.device, got.batches, got.readings, got.reason) == (
        "kj-sub-3",
        35,
        175,
        "spool full",
    )
    bad = [
        ({**REPORT, "batches": 0}, "batches"),
        ({**REPORT, "readings": "175"}, "readings"),
        ({**REPORT, "last_created": T0 - 1}, "before first_created"),
        ({**REPORT, "extra": 1}, "extra"),
        ({k: v for k, v in REPORT.items() if k != "device"}, "device"),
        ({**REPORT, "gateway": "gw2"}, "gw2"),
    ]
    for report, what in bad:
        with pytest.raises(ValueError, match=what):
            read_drop_report(orjson.dumps(report), "gw1")
    with pytest.raises(ValueError, match="at most"):
        read_drop_report(b" " * 5000, "gw1")


@given(st.binary(max_size=300))
def test_any_bytes_give_a_report_or_a_value_error(payload: bytes) -> None:
    try:
        read_drop_report(payload, "gw1")
    except ValueError as exc:
        assert str(exc)


@given(
    st.fixed_dictionaries(
        {
            "device": st.text(min_size=1, max_size=200),
            "batches": st.integers(1, 10**9),
            "readings": st.integers(0, 10**12),
            "first_created": st.integers(0, T0),
            "reason": st.text(max_size=200),
        },
        optional={"site": st.text(min_size=1, max_size=64)},
    ),
    st.integers(0, 10**9),
)
def test_every_report_a_gateway_can_make_is_read_back(report: dict, span: int) -> None:
    report = {**report, "gateway": "gw1", "last_created": report["first_created"] + span}
    got = read_drop_report(orjson.dumps(report), "gw1")
    assert got.model_dump(exclude_none=True) == report


def _pipeline() -> tuple[Pipeline, Metrics]:
    metrics = Metrics()
    return Pipeline(mine_registry(1502, 1.0), TopicLayout(), metrics), metrics


def test_the_pipeline_attributes_a_report_to_its_device_or_vehicle() -> None:
    pipe, _ = _pipeline()
    topic = "hazardhub/v1/north-coal/gateways/gw1/dropped"
    h = pipe.handle(topic, orjson.dumps(REPORT), T0 + 36_000)
    [loss] = h.losses
    assert (loss.tenant, loss.site, loss.device, loss.sensor, loss.gateway) == (
        "north-coal",
        "face-1301",
        "kj-sub-3",
        DEVICE,
        "gw1",
    )
    assert (loss.batches, loss.readings, loss.first_ms, loss.last_ms) == (35, 175, T0, T0 + 35_000)
    # a gateway of today says the site
    h = pipe.handle(topic, orjson.dumps({**REPORT, "site": "face-1301"}), T0 + 36_000)
    assert [x.site for x in h.losses] == ["face-1301"]
    # the JT/T 808 gateway counts per tenant/vehicle
    vehicle = {**REPORT, "gateway": "jt808", "device": "acme-chem/tanker-01"}
    h = pipe.handle(
        "hazardhub/v1/acme-chem/gateways/jt808/dropped", orjson.dumps(vehicle), T0 + 36_000
    )
    [loss] = h.losses
    assert (loss.site, loss.device, loss.sensor) == ("vehicles", "tanker-01", "tanker-01.speed")
    # another tenant's vehicle, an unknown device, a bad report: dead letters with the reason
    gw9 = "hazardhub/v1/north-coal/gateways/gw9/dropped"
    for topic_, report, reason in (
        ("hazardhub/v1/north-coal/gateways/jt808/dropped", vehicle, "unknown_device"),
        # a Modbus gateway spools no positions: acme-chem's gw1 cannot report a tanker's loss
        (
            "hazardhub/v1/acme-chem/gateways/gw1/dropped",
            {**vehicle, "gateway": "gw1"},
            "unknown_device",
        ),
        (topic, {**REPORT, "device": "nope"}, "unknown_device"),
        (topic, {**REPORT, "site": "face-9"}, "unknown_device"),
        (gw9, {**REPORT, "gateway": "gw9"}, "unknown_device"),  # gw1 serves kj-sub-3
        (topic, {**REPORT, "batches": -1}, "bad_drop_report"),
        (topic, {**REPORT, "last_created": T0 + 3_600_000}, "bad_drop_report"),  # ahead
    ):
        h = pipe.handle(topic_, orjson.dumps(report), T0 + 36_000)
        assert h.rejected_whole and h.reasons[0].startswith(reason), h.reasons
        assert h.losses == ()


def test_a_loss_is_a_moment_alarm_recorded_once(tmp_path) -> None:
    reg = mine_registry(1502, 1.0)
    db = StateDB(tmp_path / "state.db")
    try:
        book = AlarmBook(db, reg, compile_table(reg.sensors))
        loss = DataLoss(
            "north-coal", "face-1301", "kj-sub-3", DEVICE, "gw1", 35, 175, T0, T0 + 35_000, "full"
        )
        events = book.record_losses([loss], T0 + 60_000)
        assert [(e.kind, e.side, e.level_name, e.ts, e.value) for e in events] == [
            ("raised", "data_lost", "data_lost", T0, 175.0),
            ("cleared", "data_lost", "normal", T0 + 35_000, 175.0),
        ]
        assert "gw1 dropped 35 batches (175 readings)" in events[0].comment
        # the gap as the operator reads times (China Standard Time), not raw epoch ms alone
        begin = datetime.fromtimestamp(T0 / 1000, timezone(timedelta(hours=8)))
        end = begin + timedelta(seconds=35)
        assert f"made between {begin:%Y-%m-%d %H:%M:%S} and {end:%Y-%m-%d %H:%M:%S} CST" in (
            events[0].comment
        )
        [row] = db.list_alarms(None, sensor=DEVICE)
        assert (row.state, row.isa_state, row.rule, row.tier, row.gateway) == (
            "cleared",
            "rtn_unack",
            "gateway",
            "yellow",
            "gw1",
        )
        # the broker delivers the report again, or twice in one flush: nothing more
        assert book.record_losses([loss], T0 + 61_000) == []
        twice = DataLoss(
            "north-coal", "face-1301", "kj-sub-3", DEVICE, "gw1", 2, 10, T0 + 50, T0 + 90, "full"
        )
        assert [e.kind for e in book.record_losses([twice, twice], T0 + 61_500)] == [
            "raised",
            "cleared",
        ]
        # a later report of the same device is another loss
        later = DataLoss(
            "north-coal", "face-1301", "kj-sub-3", DEVICE, "gw1", 1, 5, T0 + 40_000, T0 + 40_000, ""
        )
        assert len(book.record_losses([later], T0 + 62_000)) == 2
    finally:
        db.close()


def _batch(seq: int) -> TelemetryBatch:
    return TelemetryBatch(
        "gw1",
        "kj-sub-3",
        1,
        seq,
        ("ch4_t1",),
        np.zeros(1, np.uint16),
        np.array([T0 + seq * 1000], np.int64),
        np.array([0.3]),
        np.zeros(1, np.uint8),
    )


@pytest.mark.slow
async def test_a_spool_overflowing_in_an_outage_raises_data_lost_at_the_hub(mosquitto, tmp_path):
    registry = mine_registry(1502, 1.0)
    device = registry.devices[("north-coal", "face-1301", "kj-sub-3")]
    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    clock = [T0]  # the spool's clock: when each batch was made
    spool = Spool(
        tmp_path / "spool.db", max_bytes=20 * len(encode(_batch(0))), clock_ms=lambda: clock[0]
    )
    pub = coal_uplink(mosquitto.port, spool)
    stop = asyncio.Event()
    runner = asyncio.create_task(pub.run(stop))
    try:
        async with (
            running_hub(hub),
            access.client() as client,
        ):
            await eventually(lambda: asyncio.sleep(0, pub.connected.is_set()), 10, "the uplink")
            mosquitto.stop()
            for seq in range(60):  # the spool keeps about 20 of them
                clock[0] = T0 + seq * 1000
                await pub.submit_batch(device, _batch(seq))
            dropped = sum(r.readings for r in spool.drop_reports())
            assert dropped > 0
            mosquitto.start()

            async def lost() -> list[dict[str, object]]:
                got: list[dict[str, object]] = await get_json(
                    client, "/api/v1/alarms", sensor=DEVICE, kind="data_lost"
                )
                return got

            [alarm] = await eventually(lost, 30, "the data_lost alarm at the hub")
            assert (alarm["value"], alarm["isa_state"], alarm["level_name"]) == (
                float(dropped),
                "rtn_unack",
                "data_lost",
            )
            # the gap: from the first batch dropped (the first made) to the last
            assert alarm["started_ts"] == T0
            assert T0 < alarm["ended_ts"] < T0 + 60_000
            await asyncio.sleep(1.0)
            assert len(await lost()) == 1
            assert hub.metrics.total("hazardhub_gateway_dropped_readings_total") == dropped
    finally:
        stop.set()
        await runner
        spool.close()


async def test_data_lost_is_notified_while_the_devices_comm_loss_is_active(tmp_path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.subscribe(id="all")
        for sid in ("ch4-t0", "ch4-t1", "ch4-t2", "co", "feed"):
            rig.feed(sid, [float("nan")], quality=int(Quality.COMM_LOSS))
        assert (DEVICE, "raised") in told(await rig.pump(), "all")
        loss = DataLoss(
            "north-coal", "face-1301", "kj-sub-3", DEVICE, "gw1", 3, 9, rig.now - 5000, rig.now, ""
        )
        rig.book.record_losses([loss], rig.now)
        notes = await rig.pump(1)
        assert told(notes, "all") == [(DEVICE, "raised"), (DEVICE, "cleared")]
        assert {e["alarm_kind"] for n in notes for e in n.body["events"]} == {"data_lost"}  # type: ignore[attr-defined]
    finally:
        rig.notifier.close()
        rig.db.close()
