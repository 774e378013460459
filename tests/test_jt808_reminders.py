"""Reminders to the driver (JT/T 808 0x8300, display and TTS) when the hub raises a vehicle alarm
its carrier chose: the codec (the docs' vectors, a round-trip property), the `remind:`
configuration (GBK, kinds, per vehicle), the hub's choice (once per raise, in time) and, over real
sockets and a real Mosquitto, a terminal that hears its overspeed and answers 0x0001, a vehicle
without `remind` that hears nothing, and a terminal away whose reminder is dropped, counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from pathlib import Path

import aiomqtt
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jt808_helpers import make_gateway, registry_of, running
from pydantic import ValidationError
from test_docs_vectors import _byte_table, _check_table, _doc, _hex

from alerts.alarmevent import AlarmEvent
from alerts.table import kind_name
from gateway.jt808.commands import CommandListener
from gateway.jt808.directory import VehicleRef
from gateway.jt808.limits import Quiet
from gateway.jt808.reminders import Reminders
from hazardhub.hub import Hub, HubSettings
from hazardhub.reminders import REMINDERS_METRIC, DriverReminders
from simulators.jt808 import Fix, Jt808Terminal
from telemetry.config import HubConfig
from telemetry.jt808 import (
    Frame,
    Header,
    Jt808Error,
    MsgId,
    TerminalResponse,
    TextMessage,
    decode_body,
    decode_frame,
    encode_frame,
)
from telemetry.registry import Registry

from e2e_helpers import eventually, running_hub
from services import free_port

OVERSPEED = "您已超速，请减速行驶"
CONFIG = """
version: 1
fleet:
  hazmat:
    overspeed_min_s: 0
    remind: {overspeed: "您已超速，请减速行驶", fatigue: "您已连续驾驶4小时，请停车休息"}
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat, terminal: "13800000002", remind: {}}
  - id: coach-co
    vehicles:
      - {id: coach-07, plate: 苏B·K5678, class: coach, terminal: "13912344329",
         remind: {overspeed: "客车超速，请减速"}}
"""


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, CONFIG)


# -- the codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "header", "message"),
    [
        ("jt808-8300", Header(0x8300, 3, "013800000001"), TextMessage(0x0C, OVERSPEED)),
        (
            "jt808-8300-2019",
            Header(0x8300, 3, "00000000013800000001", 1),
            TextMessage(0x0F, OVERSPEED, 1),
        ),
    ],
)
def test_the_documented_0x8300_vectors_decode_and_encode(
    name: str, header: Header, message: TextMessage
) -> None:
    doc = _doc("jt808.md")
    raw = _hex(doc, name)
    _check_table(raw, _byte_table(doc, name))
    frame = decode_frame(raw)
    assert frame.header == header
    assert decode_body(0x8300, frame.body, header.is_2019) == message
    assert message.flag & TextMessage.TTS and message.flag & TextMessage.DISPLAY
    assert OVERSPEED.encode("gbk") in raw  # GBK, as sent
    assert encode_frame(header, message.encode(header.is_2019)) == raw


gbk_text = st.text(st.characters(codec="gbk"), max_size=60)


@given(st.integers(0, 255), gbk_text, st.integers(0, 255), st.booleans())
def test_text_message_round_trip(flag: int, text: str, text_type: int, v2019: bool) -> None:
    msg = TextMessage(flag, text, text_type if v2019 else 1)
    body = msg.encode(v2019)
    assert len(body) == (2 if v2019 else 1) + len(text.encode("gbk"))
    assert decode_body(MsgId.TEXT_MESSAGE, body, v2019) == msg


@given(st.binary(max_size=300), st.booleans())
def test_any_0x8300_body_decodes_or_is_the_peers_fault(body: bytes, v2019: bool) -> None:
    with contextlib.suppress(Jt808Error):
        decode_body(MsgId.TEXT_MESSAGE, body, v2019)


def test_text_gbk_cannot_carry_or_too_long_is_refused_when_encoded() -> None:
    for text in ("慢点 😀", "𠮷野家", "x" * 1022):
        with pytest.raises(ValueError):
            TextMessage(0x0C, text).encode(False)
    assert len(TextMessage(0x0C, "慢" * 510).encode(True)) == 1022


# -- the configuration -------------------------------------------------------------------------


def _config(fleet: str, vehicle: str = "") -> HubConfig:
    import yaml

    text = f"""
version: 1
fleet: {fleet}
tenants:
  - id: t
    vehicles:
      - {{id: v1, plate: 苏A·D1234, class: hazmat{vehicle}}}
"""
    return HubConfig.model_validate(yaml.safe_load(text))


def test_remind_is_validated_at_load_naming_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        _config('{hazmat: {remind: {overspeed: "慢点 😀"}}}')
    assert "hazmat.remind.overspeed" in str(err.value) and "GBK" in str(err.value)
    assert "'😀'" in str(err.value)
    with pytest.raises(ValidationError) as err:
        _config("{}", ', remind: {overspeed: "𠮷"}')
    assert "vehicles.0.remind.overspeed" in str(err.value) and "GBK" in str(err.value)
    with pytest.raises(ValidationError, match="overspeeed"):
        _config('{hazmat: {remind: {overspeeed: "慢点"}}}')
    with pytest.raises(ValidationError, match="offline"):  # not the driver's to mend
        _config('{hazmat: {remind: {offline: "慢点"}}}')
    for bad in ('""', '"   "', '"' + "慢" * 101 + '"', '"两行\\n文字"'):
        with pytest.raises(ValidationError, match=r"remind\.overspeed"):
            _config(f"{{hazmat: {{remind: {{overspeed: {bad}}}}}}}")


def test_a_vehicles_remind_replaces_its_class_and_none_is_the_default() -> None:
    fleet = _config(f'{{hazmat: {{remind: {{overspeed: "{OVERSPEED}"}}}}}}').fleet
    assert fleet.reminder("hazmat", None, "overspeed") == OVERSPEED
    assert fleet.reminder("hazmat", {}, "overspeed") is None
    assert fleet.reminder("hazmat", {"fatigue": "休息"}, "overspeed") is None
    assert fleet.reminder("hazmat", None, "fatigue") is None
    assert fleet.reminder("coach", None, "overspeed") is None  # off unless configured
    assert _config("{}").fleet.reminder("hazmat", None, "overspeed") is None
    spec = _config("{}", ', remind: {overspeed: " 请减速 "}').tenants[0].vehicles[0]
    assert spec.remind == {"overspeed": "请减速"}


# -- the hub's choice --------------------------------------------------------------------------


def _event(
    kind: str, side: str = "overspeed", device: str = "tanker-01", **kw: object
) -> AlarmEvent:
    fields: dict[str, object] = {
        "alarm_id": 7,
        "kind": kind,
        "tenant": "chem-logistics",
        "site": "vehicles",
        "device": device,
        "sensor": f"{device}.speed",
        "rule": "fleet",
        "side": side,
        "level": 1,
        "level_name": "alarm",
        "tier": "orange",
        "action": "",
        "value": 90.0,
        "ts": 1_000_000,
        "arrival": 1_002_000,
    }
    fields.update(kw)
    return AlarmEvent(**fields)  # type: ignore[arg-type]


async def test_the_hub_reminds_once_per_raise_in_time_and_never_waits_without_bound(
    registry: Registry,
) -> None:
    published: list[tuple[str, dict[str, object]]] = []
    outcomes: list[str] = []
    up = asyncio.Event()
    up.set()
    clock = [1_002_500]

    async def publish(topic: str, payload: bytes) -> None:
        if not up.is_set():
            raise ConnectionError("no broker")
        published.append((topic, orjson.loads(payload)))

    reminders = DriverReminders(
        lambda: registry, publish, up, outcomes.append, max_waiting=2, clock_ms=lambda: clock[0]
    )
    task = asyncio.create_task(reminders.run())
    try:
        await reminders.on_alarms(
            [
                _event("raised"),
                _event("escalated"),  # a raise only, once
                _event("cleared", alarm_id=12),
                _event("acknowledged"),
                _event("raised", alarm_id=13),  # raised and cleared together: over
                _event("cleared", alarm_id=13),
                _event("raised", side="offline", alarm_id=8),  # not a kind reminded of
                _event("raised", alarm_id=9, device="tanker-02"),  # remind: {}
                _event("raised", alarm_id=10, site="face-1", device="kj-1"),  # no vehicle
                _event("raised", alarm_id=11, ts=1_000_000, arrival=1_061_000),  # judged late
            ]
        )
        await eventually(lambda: _now(len(published) == 1), 5, "the reminder")
        assert published == [
            (
                "hazardhub/v1/chem-logistics/vehicles/tanker-01/command",
                {
                    "command": "remind",
                    "alarm_id": 7,
                    "kind": "overspeed",
                    "text": OVERSPEED,
                    "ts": 1_000_000,
                    "at": 1_002_500,
                },
            )
        ]
        assert outcomes == ["late", "published"]
        # no broker: kept at most `within_s` (then dropped), and at most `max_waiting`
        up.clear()
        await reminders.on_alarms([_event("raised", alarm_id=i) for i in (20, 21, 22)])
        assert outcomes[-1] == "full"
        clock[0] += 61_000
        await eventually(lambda: _now(outcomes.count("expired") == 2), 5, "the drop")
        assert len(published) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _now(value: bool) -> bool:
    return value


# -- over real sockets -------------------------------------------------------------------------


class Listening(Jt808Terminal):
    """A terminal that keeps the 0x8300 it gets (body and message) and answers `result`."""

    def __init__(self, *args: object, result: int = 0, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.texts: list[tuple[Header, bytes, TextMessage]] = []
        self.result = result

    async def _on_frame(self, frame: Frame) -> None:
        h = frame.header
        if h.msg_id != MsgId.TEXT_MESSAGE:
            await super()._on_frame(frame)
            return
        msg = decode_body(h.msg_id, frame.body, h.is_2019)
        assert isinstance(msg, TextMessage)
        self.texts.append((h, frame.body, msg))
        reply = self._header(MsgId.TERMINAL_RESPONSE)
        body = TerminalResponse(h.serial, h.msg_id, self.result).encode(self.v2019)
        await self.send_raw(encode_frame(reply, body))


def _fixes(t0: int, speed: float) -> list[Fix]:
    return [Fix(t0 + i * 5_000, 31.2 + i * 0.0005, 121.4, speed, 90, 12) for i in range(3)]


async def test_a_driver_hears_the_overspeed_the_hub_raised_and_a_vehicle_without_remind_not(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    hub = Hub(
        registry,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=free_port()),
    )
    gw = make_gateway(registry, mosquitto.port, tmp_path / "jt808")
    t0 = int(time.time() * 1000) // 1000 * 1000 - 20_000
    async with running_hub(hub), running(gw, commands=True) as (host, port):
        tanker = Listening(host, port, "013800000001", "苏A·D1234")
        quiet = Listening(host, port, "013800000002", "苏A·D5678")
        coach = Listening(host, port, "00000000013912344329", "苏B·K5678", v2019=True, result=3)
        async with tanker, quiet, coach:
            for terminal in (quiet, tanker, coach):
                await terminal.login()
            # 120 km/h: above hazmat's 60 and the coach's 100 by day (80 at night)
            for terminal in (quiet, tanker, coach):
                for fix in _fixes(t0, 120.0):
                    await terminal.report(fix)
            await eventually(lambda: _now(len(tanker.texts) == 1), 15, "the tanker's reminder")
            await eventually(lambda: _now(len(coach.texts) == 1), 15, "the coach's reminder")
            counters = gw.server.counters
            await eventually(
                lambda: _now(counters["reminders_ok"] == 1), 5, "the tanker's 0x0001 counted"
            )
            await eventually(
                lambda: _now(counters["reminders_unsupported"] == 1), 5, "the coach's 0x0001"
            )

            # tanker-02 (remind: {}) raised its overspeed too, and heard nothing
            def overspeeds() -> list[str]:
                rows = hub.statedb.active_alarms()
                return sorted(r.device for r in rows if kind_name(r.side) == "overspeed")

            await eventually(
                lambda: _now(overspeeds() == ["coach-07", "tanker-01", "tanker-02"]),
                10,
                "three overspeeds",
            )
            await asyncio.sleep(0.5)  # time for a reminder that should not come
            assert quiet.texts == []
            assert hub.metrics.get(REMINDERS_METRIC, outcome="published") == 2
    # the 2013 terminal: flag 0c (display, TTS), the text in GBK, in a 2013 header
    h, body, msg = tanker.texts[0]
    assert not h.is_2019 and body == b"\x0c" + OVERSPEED.encode("gbk")
    assert msg == TextMessage(0x0C, OVERSPEED)
    # the 2019 terminal: its vehicle's own text, flag 0f (a notification) and text type 1
    h, body, msg = coach.texts[0]
    assert h.is_2019 and body == b"\x0f\x01" + "客车超速，请减速".encode("gbk")
    assert counters["reminders_sent"] == 2 and counters["reminders_failed"] == 0


async def test_a_terminal_away_gets_a_reminder_within_its_bound_else_it_is_dropped_counted(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(registry, mosquitto.port, tmp_path / "jt808", remind_within_s=1.0)
    topic = "hazardhub/v1/chem-logistics/vehicles/tanker-01/command"

    def command(alarm_id: int, at: int) -> bytes:
        return orjson.dumps(
            {"command": "remind", "alarm_id": alarm_id, "kind": "overspeed",
             "text": OVERSPEED, "ts": at - 1000, "at": at}
        )  # fmt: skip

    async with running(gw, commands=True) as (host, port):
        terminal = Listening(host, port, "013800000001", "苏A·D1234")
        async with terminal:
            await terminal.login()  # served here
        counters, listener = gw.server.counters, gw.commands.counters
        await eventually(lambda: _now(not gw.server.by_vehicle), 5, "the terminal gone")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
            now = int(time.time() * 1000)
            await hub.publish(topic, command(1, now), qos=1)  # kept, then dropped
            await hub.publish(topic, command(1, now), qos=1)  # a duplicate: nothing more
            await hub.publish(topic, command(2, now - 120_000), qos=1)  # made 2 min ago
            await hub.publish(topic, b'{"command": "remind", "text": 5}', qos=1)
            yes = {"command": "remind", "alarm_id": True, "text": OVERSPEED, "at": now}
            await hub.publish(topic, orjson.dumps(yes), qos=1)  # an id is no boolean
            bad = {"command": "remind", "alarm_id": 3, "text": "慢点 😀", "at": now}
            await hub.publish(topic, orjson.dumps(bad), qos=1)
        await eventually(lambda: _now(sum(listener.values()) == 6), 10, "the commands")
        assert listener == {
            "reminder_kept": 1,
            "reminder_repeat": 1,
            "reminder_stale": 1,
            "rejected": 3,
        }
        await eventually(lambda: _now(counters["reminders_expired"] == 1), 5, "the drop")
        assert len(gw.server.reminders) == 0  # nothing kept for good
        # within the bound, the terminal that comes back hears it, once
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hub:
            await hub.publish(topic, command(4, int(time.time() * 1000)), qos=1)
        await eventually(lambda: _now(listener["reminder_kept"] == 2), 10, "the command")
        async with terminal:
            await terminal.authenticate()
            await eventually(lambda: _now(len(terminal.texts) == 1), 5, "the late reminder")
            await eventually(lambda: _now(counters["reminders_ok"] == 1), 5, "its 0x0001")
        assert counters["reminders_sent_late"] == 1 and counters["reminders_expired"] == 1
        assert terminal.texts[0][2] == TextMessage(0x0C, OVERSPEED)


def test_a_command_the_gateway_fails_to_carry_out_is_counted_and_the_listener_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def confirm_alarm(self, *args: object) -> bool:
            return True

        def remind(self, *args: object) -> str:
            raise RuntimeError("a bug of ours")

    listener = CommandListener(Broken(), "127.0.0.1", 1)
    topic = "hazardhub/v1/chem-logistics/vehicles/tanker-01/command"
    remind = {"command": "remind", "alarm_id": 1, "text": OVERSPEED, "at": 1}
    assert listener.handle(topic, orjson.dumps(remind)) == "internal_error"
    assert listener.handle(topic, b'{"command": "confirm_alarm", "alarm_type": 1}') == "confirmed"
    assert listener.counters == {"internal_error": 1, "confirmed": 1}
    assert "a bug of ours" in caplog.text


class _Away:
    """A terminal (`Reminders`' protocol) that records what it was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.session = self

    def remind(self, text: str) -> bytes:
        return text.encode()

    def write(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_reminder_waits_by_the_gateways_clock_whatever_the_hubs() -> None:
    """The hub's clock an hour ahead: the reminder is counted, taken as made now and kept a
    minute by the gateway's clock (it was kept 59 min, helper-129); a hub a little behind is
    in time."""
    counters: Counter[str] = Counter()
    reminders = Reminders(counters, Quiet(logging.getLogger("test")))
    ref = VehicleRef("acme", "tanker-01")
    now = 1_800_000_000_000
    assert reminders.remind(ref, 17, "您已超速", now + 3_600_000, now, None, served=True) == "kept"
    assert counters["reminders_clock_ahead"] == 1
    assert reminders.expire(now + 61_000) == 1 and len(reminders) == 0
    terminal = _Away()
    assert reminders.remind(ref, 18, "您已超速", now - 5_000, now, terminal, served=True) == "sent"
    assert reminders.remind(ref, 19, "您已超速", now - 5_000, now, None, served=True) == "kept"
    assert reminders.expire(now + 58_000) == 0  # 58 s after it came here
    assert reminders.authenticated(ref, terminal, now + 58_000) == 1


def test_a_reminder_dropped_for_the_total_limit_is_said_dropped() -> None:
    """`max_total` waiting: a vehicle with none waiting has its reminder dropped, and said so
    (it was said kept, helper-129); one with some waiting loses its oldest instead."""
    counters: Counter[str] = Counter()
    reminders = Reminders(counters, Quiet(logging.getLogger("test")), max_total=1)
    now = 1_800_000_000_000
    one, two = VehicleRef("acme", "tanker-01"), VehicleRef("acme", "tanker-02")
    assert reminders.remind(one, 1, "a", now, now, None, served=True) == "kept"
    assert reminders.remind(two, 2, "b", now, now, None, served=True) == "dropped"
    assert reminders.remind(one, 3, "c", now, now, None, served=True) == "kept"
    assert len(reminders) == 1 and counters["reminders_dropped"] == 2
