"""A vehicle terminal's own alarms, end to end over real sockets: a JT/T 808 terminal reports
the emergency bit -> the JT/T 808 gateway -> mosquitto -> the hub raises a terminal alarm; an
operator acknowledges it through the API -> the hub's command -> the gateway sends 0x8203 to the
terminal; the bit goes back to 0 -> the alarm returns to normal."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from alerts.vehicles.terminal import TERMINAL_BITS, TERMINAL_SIDE0, TerminalAlarms, terminal_kind
from api.auth import hash_key
from gateway.jt808 import Jt808Gateway
from gateway.jt808.commands import CommandListener
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load_registry
from ingest.store.base import PositionBatch
from simulators.jt808 import Fix, Jt808Terminal
from telemetry.config import ApiKeySpec
from telemetry.jt808 import Alarm, Header, encode_frame
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, get_json, running_hub
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
CST = timezone(timedelta(hours=8))
SECRET = b"test-secret-0123456789"
CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
"""


def test_bits_raise_and_clear_in_event_time_per_vehicle():
    alarms = TerminalAlarms()
    emergency, overspeed, unknown = int(Alarm.EMERGENCY), int(Alarm.OVERSPEED), 1 << 9
    batch = PositionBatch(
        np.array([7, 7, 5, 7], np.int32),
        np.array([30, 10, 10, 20], np.int64),
        np.zeros(4),
        np.zeros(4),
        np.zeros(4),
        np.zeros(4),
    )
    flags = np.array([0, emergency, overspeed | unknown, emergency | overspeed], np.uint32)
    got = [(c.vehicle, c.bit, c.level, c.ts) for c in alarms.judge(batch, flags)]
    # vehicle 5: overspeed raised (bit 9 is not one hazardhub raises); vehicle 7 in time order
    assert got == [(5, 1, 1, 10), (7, 0, 1, 10), (7, 1, 1, 20), (7, 0, 0, 30), (7, 1, 0, 30)]
    assert alarms.flags == {5: overspeed}
    # after a restart, the active alarms are restored, so their clear is seen
    again = TerminalAlarms()
    again.restore([(5, 1)])
    one = PositionBatch(*(np.array([v]) for v in (5, 40, 0.0, 0.0, 0.0, 0.0)))
    assert [(c.bit, c.level) for c in again.judge(one, np.array([0], np.uint32))] == [(1, 0)]


def test_every_bit_the_terminal_holds_until_confirmed_is_an_alarm_to_acknowledge():
    """Bits 22 (road-segment time) and 31 (illegal door opening, 2013) were held by the terminal
    until confirmed, yet raised nothing: no operator could acknowledge them, no 0x8203 went, the
    bit stayed set for good (helper-83). The 2019 bits 15-17 were ignored."""
    held = [b for b in range(32) if (1 << b) & Alarm.ACK_CLEAR]
    assert held == [0, 3, 20, 21, 22, 27, 28]  # 0x8203's types (31 is reserved there)
    assert set(held) <= set(TERMINAL_BITS)
    alarms = TerminalAlarms()
    bits = (15, 16, 17, 22, 31)
    batch = PositionBatch(
        np.array([3, 3], np.int32), np.array([10, 20], np.int64), *(np.zeros(2),) * 4
    )
    flags = np.array([sum(1 << b for b in bits), 0], np.uint32)
    got = [(c.bit, c.level, c.ts) for c in alarms.judge(batch, flags)]
    assert got == [(b, 1, 10) for b in bits] + [(b, 0, 20) for b in bits]
    assert [terminal_kind(TERMINAL_SIDE0 + b) for b in bits] == [
        "terminal_illegal_driving",
        "terminal_tyre_pressure",
        "terminal_blind_zone",
        "terminal_segment_time",
        "terminal_door_open",
    ]


def test_command_listener_rejects_what_it_cannot_do():
    sent: list[tuple[str, str, int, int]] = []

    class Server:
        def confirm_alarm(self, tenant, vehicle, alarm_serial=0, alarm_type=0):
            sent.append((tenant, vehicle, alarm_serial, alarm_type))
            return vehicle == "on"

    listener = CommandListener(Server(), "127.0.0.1", 1)
    topic = TopicLayout().vehicle_command("t", "on")
    ok = b'{"command": "confirm_alarm", "alarm_type": 1, "alarm_serial": 0}'
    assert listener.handle(topic, ok) == "confirmed"
    assert listener.handle(TopicLayout().vehicle_command("t", "off"), ok) == "not_connected"
    for bad in (
        b"{",
        b"[]",
        b'{"command": "reboot"}',
        b'{"command": "confirm_alarm", "alarm_type": -1}',
        b'{"command": "confirm_alarm", "alarm_serial": 70000}',
    ):
        assert listener.handle(topic, bad) == "rejected"
    assert listener.handle("hazardhub/v1/t/s/d/telemetry", ok) == "rejected"
    assert sent == [("t", "on", 0, 1), ("t", "off", 0, 1)]
    assert listener.counters == {"confirmed": 1, "not_connected": 1, "rejected": 6}


@pytest.mark.slow
async def test_terminal_emergency_alarm_acknowledged_and_confirmed(mosquitto, tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    key = "op-key-0123456789"  # the enterprise's duty room (an operator of its tenant)
    centre_key = "centre-key-0123456789"  # the supervising centre (an operator of every tenant)
    api_port = free_port()
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[
            ApiKeySpec(
                name="op", sha256=hash_key(key), role="operator", tenants=("chem-logistics",)
            ),
            ApiKeySpec(name="centre", sha256=hash_key(centre_key), role="operator"),
        ],
    )
    gw = Jt808Gateway(
        registry,
        listen=("127.0.0.1", 0),
        broker=(mosquitto.host, mosquitto.port),
        spool_dir=tmp_path / "spool",
        secret=SECRET,
    )
    now = datetime.now(CST).replace(microsecond=0)
    t0 = int(now.timestamp() * 1000) - 60_000

    def fix(i: int, alarm: int = 0) -> Fix:
        return Fix(t0 + i * 10_000, 31.2 + i * 0.0005, 121.4, 50.0, 90, 12, alarm=alarm)

    stop = asyncio.Event()
    async with running_hub(hub):
        gw_task = asyncio.create_task(gw.run(stop))
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            await asyncio.wait_for(gw.commands.subscribed.wait(), 10)
            host, port = gw.server.address  # type: ignore[misc]
            async with (
                Jt808Terminal(host, port, "013800000001", "苏A·D1234") as terminal,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{api_port}",
                    headers={"Authorization": f"Bearer {key}"},
                ) as api,
            ):
                await terminal.login()
                await terminal.report(fix(0))
                # bad input on the JT/T 808 port between the good frames: garbage, a frame
                # whose check code is wrong, a location body too short; counted, not fatal
                await terminal.send_raw(b"\x00\x01garbage\x7e\x7e")
                bad = bytearray(encode_frame(Header(0x0200, 900, terminal.phone, 1), b"\0" * 28))
                bad[-2] ^= 0x55
                await terminal.send_raw(bytes(bad))
                await terminal.send_raw(encode_frame(Header(0x0200, 901, terminal.phone, 1), b"\0"))
                await terminal.report(fix(1, alarm=int(Alarm.EMERGENCY)))

                async def raised():
                    rows = await get_json(api, "/api/v1/alarms", kind="terminal_emergency")
                    return rows[0] if rows else None

                alarm = await eventually(raised, 15, "the terminal's emergency alarm")
                assert (alarm["sensor"], alarm["rule"], alarm["tier"]) == (
                    "tanker-01.speed",
                    "terminal",
                    "red",
                )
                assert alarm["started_ts"] == t0 + 10_000  # the event time of the fix
                assert alarm["isa_state"] == "unack"
                # the centre's acknowledgement is the centre's: the vehicle is not told
                r = await api.post(
                    f"/api/v1/alarms/{alarm['id']}/acknowledge",
                    json={"note": "中心已知悉"},
                    headers={"Authorization": f"Bearer {centre_key}"},
                )
                assert r.status_code == 200 and r.json()["centre_acked"] is True
                assert r.json()["isa_state"] == "unack"
                await asyncio.sleep(1.0)  # a confirmation would come within this
                assert terminal.confirmations == []
                # the enterprise acknowledges (red: with a note): the terminal gets 0x8203 for
                # the emergency bit
                r = await api.post(
                    f"/api/v1/alarms/{alarm['id']}/acknowledge", json={"note": "已电话联系司机"}
                )
                assert r.status_code == 200 and r.json()["isa_state"] == "ack"
                await eventually(
                    lambda: _async(bool(terminal.confirmations)), 15, "the 0x8203 confirmation"
                )
                assert [(m.alarm_serial, m.alarm_type) for m in terminal.confirmations] == [
                    (0, int(Alarm.EMERGENCY))
                ]
                # the terminal clears its bit: the alarm returns to normal (acknowledged)
                await terminal.report(fix(2))

                async def normal():
                    row = await get_json(api, f"/api/v1/alarms/{alarm['id']}")
                    return row if row["isa_state"] == "normal" else None

                row = await eventually(normal, 15, "the alarm to return to normal")
                assert row["ended_ts"] == t0 + 20_000
                # a power cut's bit the terminal clears by itself: acknowledged, no 0x8203
                # (JT/T 808 confirms only bits 0, 3, 20, 21, 22, 27, 28)
                await terminal.report(fix(3, alarm=int(Alarm.POWER_CUT)))

                async def power_cut():
                    rows = await get_json(api, "/api/v1/alarms", kind="terminal_power_off")
                    return rows[0] if rows else None

                cut = await eventually(power_cut, 15, "the terminal's power-cut alarm")
                r = await api.post(f"/api/v1/alarms/{cut['id']}/acknowledge", json={})
                assert r.status_code == 200 and r.json()["isa_state"] == "ack"
                await asyncio.sleep(1.5)  # a confirmation would come within this
                assert len(terminal.confirmations) == 1
                assert gw.commands.counters["confirmed"] == 1
                # the emergency button pressed where the terminal has no fix (a tunnel): the
                # report repeats its last place with status bit 1 clear; the alarm is raised
                # from its bits, and the place is not taken (no track point)
                lost = Fix(
                    t0 + 40_000,
                    31.2,
                    121.4,
                    50.0,
                    90,
                    12,
                    alarm=int(Alarm.EMERGENCY),
                    positioned=False,
                )
                await terminal.report(lost)

                async def again():
                    rows = await get_json(api, "/api/v1/alarms", kind="terminal_emergency")
                    return [r for r in rows if r["id"] != alarm["id"]] or None

                (sos,) = await eventually(again, 15, "the emergency of a report without a fix")
                assert sos["started_ts"] == t0 + 40_000
                # still in the tunnel, the bit cleared (after the confirmation): the report
                # without a fix goes for the bits it clears (it was dropped, and the alarm
                # stayed active until a fix came, helper-85); neither gives a track point (below)
                await terminal.report(Fix(t0 + 50_000, 31.2, 121.4, 0.0, 90, 12, positioned=False))

                async def ended():
                    row = await get_json(api, f"/api/v1/alarms/{sos['id']}")
                    return row if row["ended_ts"] else None

                assert (await eventually(ended, 15, "the clear in the tunnel"))["ended_ts"] == (
                    t0 + 50_000
                )
                counters = gw.server.counters
                assert counters["bad_frame"] == 2, counters
                assert counters["bad_body"] + counters["phone_mismatch"] == 1, counters
                assert counters["internal_error"] == 0
                # every good position is stored, the bad frames disturbed nothing
                track = await get_json(
                    api,
                    "/api/v1/vehicles/tanker-01/track",
                    start=t0 - 1,
                    end=t0 + 60_000,
                )
                assert [p["ts"] for p in track] == [t0 + k * 10_000 for k in range(4)]
        finally:
            stop.set()
            await asyncio.wait_for(gw_task, 10)


async def _async(value: bool) -> bool:
    return value


def test_a_backfilled_position_does_not_flip_the_alarms_of_now():
    alarms = TerminalAlarms()
    emergency = int(Alarm.EMERGENCY)

    def judge(ts: int, flags: int):
        one = PositionBatch(*(np.array([v]) for v in (7, ts, 0.0, 0.0, 0.0, 0.0)))
        return [(c.bit, c.level) for c in alarms.judge(one, np.array([flags], np.uint32))]

    assert judge(100, emergency) == [(0, 1)]
    assert judge(50, 0) == []  # blind-area backfill from before: not a clear
    assert judge(110, emergency) == []  # still on: not raised again
    assert judge(120, 0) == [(0, 0)]


def test_a_blind_areas_red_bits_raise_an_episode_even_after_a_newer_position():
    """A collision in a tunnel whose blind area came after the live fix (beyond the gateway's
    hold, or a recorder posting over MQTT) raised nothing: the bit was off again by the live
    fix. The red bits of a late position raise at its time and clear at the first later one
    without them, else at the vehicle's newest position; other bits stay the alarms of now."""
    alarms = TerminalAlarms()
    collision, emergency = int(Alarm.COLLISION), int(Alarm.EMERGENCY)
    overspeed = int(Alarm.OVERSPEED)

    def judge(*fixes: tuple[int, int]):
        batch = PositionBatch(
            np.full(len(fixes), 7, np.int32),
            np.array([ts for ts, _ in fixes], np.int64),
            *(np.zeros(len(fixes)),) * 4,
        )
        flags = np.array([f for _, f in fixes], np.uint32)
        return [(c.bit, c.level, c.ts) for c in alarms.judge(batch, flags)]

    assert judge((1000, 0)) == []  # the live fix out of the tunnel
    # the blind area: overspeed (not red) says nothing of now; the collision is an episode
    got = judge((400, overspeed), (500, collision), (600, collision), (700, 0))
    assert got == [(29, 1, 500), (29, 0, 700)]
    assert judge((500, collision), (600, collision)) == []  # the same backlog sent again
    # a backlog in two batches, the bit set across them: one episode, over by the live fix
    assert judge((800, emergency)) == [(0, 1, 800), (0, 0, 1000)]
    assert judge((900, emergency)) == []
    assert judge((950, 0)) == []  # (cleared already)
    assert judge((960, emergency)) == [(0, 1, 960), (0, 0, 1000)]  # a second press: raised
    assert judge((970, 0), (2, 0)) == []  # no bits in the batch: over all the same
    assert judge((980, emergency)) == [(0, 1, 980), (0, 0, 1000)]
    # a bit active now is not raised again from the past
    assert judge((1100, collision)) == [(29, 1, 1100)]
    assert judge((1050, collision)) == []
    assert alarms.flags == {7: collision}


def test_an_undone_batch_is_judged_again_the_same():
    """The dispatcher undoes the batch when its alarms could not be recorded and judges it
    again: the newest position judged went back too (it stayed, and the retry skipped every
    position as a backfill: the emergency was never raised)."""
    alarms = TerminalAlarms()
    emergency = int(Alarm.EMERGENCY)
    batch = PositionBatch(
        np.array([7, 7], np.int32), np.array([10, 20], np.int64), *(np.zeros(2),) * 4
    )
    flags = np.array([emergency, emergency | int(Alarm.COLLISION)], np.uint32)
    saved = alarms.checkpoint()
    first = alarms.judge(batch, flags)
    assert [(c.bit, c.level) for c in first] == [(0, 1), (29, 1)]
    alarms.undo(saved)
    assert alarms.judge(batch, flags) == first


def test_a_live_position_delivered_again_is_no_blind_area():
    """MQTT delivers at least once: an emergency seen live at 100 and cleared at 110, its 100
    position delivered again, raised a second emergency (helper-137). Only a position in a hole
    of the live track (more than HOLE_MS between live positions) is a blind area's."""
    from alerts.vehicles.terminal import HOLE_MS

    alarms = TerminalAlarms()
    emergency, rollover = int(Alarm.EMERGENCY), int(Alarm.ROLLOVER)

    def judge(*fixes: tuple[int, int]):
        batch = PositionBatch(
            np.full(len(fixes), 7, np.int32),
            np.array([ts for ts, _ in fixes], np.int64),
            *(np.zeros(len(fixes)),) * 4,
        )
        flags = np.array([f for _, f in fixes], np.uint32)
        return [(c.bit, c.level, c.ts) for c in alarms.judge(batch, flags)]

    assert judge((100_000, emergency)) == [(0, 1, 100_000)]
    assert judge((110_000, 0)) == [(0, 0, 110_000)]
    assert judge((100_000, emergency)) == []  # delivered again
    # a tunnel: live 120 s, then 120 + HOLE_MS + 1 s; its blind area raises, the live ones not
    out = 120_000 + HOLE_MS + 1000
    assert judge((120_000, 0), (out, 0)) == []
    assert judge((150_000, rollover), (160_000, 0)) == [(30, 1, 150_000), (30, 0, 160_000)]
    assert judge((120_000, rollover)) == []  # (a live one, with a bit it never had: as sent)
