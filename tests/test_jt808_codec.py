"""The JT/T 808 codec (`telemetry.jt808`): recorded frames from open implementations decoded to
their documented values and re-encoded byte for byte; round-trip properties; a fuzz test that
random and mutated frames raise nothing but `Jt808Error`; the session state machine."""

from __future__ import annotations

import calendar
import contextlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jt808_helpers import CST, Vehicle, authed, directory, frames_of

from gateway.jt808.directory import Directory, VehicleRef
from gateway.jt808.session import Problem, Publish, Send, Session, State, position_record
from telemetry.jt808 import (
    Alarm,
    AlarmConfirm,
    Authenticate,
    BadFrame,
    BatchLocation,
    DriverIdentity,
    DriverRequest,
    Frame,
    FrameReader,
    Header,
    Heartbeat,
    Jt808Error,
    Location,
    PlatformResponse,
    Reassembler,
    Register,
    RegisterResponse,
    Status,
    TerminalResponse,
    VersionError,
    bcd_time_to_ms,
    decode_body,
    decode_frame,
    encode_frame,
    encode_packets,
    ms_to_bcd_time,
)
from telemetry.jt808.codec import checksum, escape, unescape


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def roundtrip(raw: bytes) -> tuple[Header, object]:
    """Decode a recorded frame, check it re-encodes to the same bytes, return header and body."""
    frame = decode_frame(raw)
    msg = decode_body(frame.header.msg_id, frame.body, frame.header.is_2019)
    assert encode_frame(frame.header, msg.encode(frame.header.is_2019)) == raw
    return frame.header, msg


# --- recorded frames ------------------------------------------------------------------------
# SmallChi/JT808 src/JT808.Protocol.Test/MessageBody/JT808_0x0200Test.cs (Demo1/Demo2): serial
# 126 (0x007E) and fuel 125 (0x007D) are escaped in the frame.
SC_0200 = h(
    "7E02000026123456789012007D02000000010000000200BA7F0E07E4F11C0028003C000018101510101001040000"
    "00640202007D01137E"
)
# same file, Test6: a real terminal's report with items 0x01 0x02 0x03 0x25 0x2B 0x30 0x31
SC_0200_DEVICE = h(
    "7E 02 00 00 3C 04 00 21 68 20 87 1D 0C 00 00 00 00 00 0C 00 C2 01 5B 6C 6E 06 C8 56 98 00 1E"
    " 00 00 00 E0 18 09 16 10 35 37 01 04 00 05 4C 7D 01 02 02 00 00 03 02 00 00 25 04 00 00 00 00"
    " 2B 04 00 00 00 00 30 01 1D 31 01 0D 97 7E"
)
# SmallChi JT808_0x0704Test.cs
SC_0704 = h(
    "7E0704005311223344556622B80002000026000000010000000200BA7F0E07E4F11C0028003C00001807151010100104"
    "00000064020200370026000000020000000100CB735507E6A32300290036007818071510103001040000006002020042"
    "D47E"
)
# SmallChi JT808_0x0100Test.cs (2013 Test1_1, 2019 Test2019_2)
SC_0100 = h(
    "7E0100002D000123456789000A002800323132333430736D616C6C6368693132333030303030303030304348493132"
    "333001D4C1413132333435BA7E"
)
SC_0100_2019 = h(
    "7E010040540100000000000123456789000A002800323030303030303031323334303030303030303030303030303030"
    "30303030736D616C6C63686931323330303030303030303030303030303030303030303030303043484931323301D4C1"
    "413132333435B27E"
)
SC_8100 = h("7E81000009012345678900000A006400313233343536687E")  # JT808_0x8100Test Test2
SC_8100_REFUSED = h("7E81000003012345678900000A006404617E")  # Test4: result 4, no code
SC_0102 = h("7E010200090123456789003039343536313231313131BE7E")  # JT808_0x0102Test Test4
SC_8001 = h("7E80010005012345678900000A0064020000617E")  # JT808_0x8001Test Test2
# makeclan/xtream-codec debug/jt/.../codec-utils.ts (2019 headers)
XT_0200 = h(
    "7e02004026010000000001391234432900000000006f0000001601dc9a0707456246007b00420003250129223344020200"
    "6401040000000c417e"
)
XT_0704 = h(
    "7e0704403f01000000000139123443290000000200001c000000010000000101d907f2073d336c029a00210059241029"
    "213903001c000000010000000101d907f3073d336d03090043005a241029213903f87e"
)
XT_8203 = h("7e8203400601000000000139123443290000014110200000c27e")
XT_8100 = h("7e8100400d01000000000139123443290000006f006f6b2e2e6f6b2e2e6f6bd27e")
# fakeyanss/jt808-server-go internal/protocol/packet_codec_test.go: case2 good, case1 bad
FK_0200 = h(
    "7E0200001C2234567890150000000000000002080301CD779E0728C032003C0000008F230125145158FB7E"
)
FK_0200_BAD = h(
    "7E0200001c2234567890150000000000000002080301cd48b50728d22b003902bc008f2301251438137d027E"
)


def cst_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=CST).timestamp() * 1000)


def test_smallchi_location_with_escapes() -> None:
    header, msg = roundtrip(SC_0200)
    assert (header.msg_id, header.serial, header.phone, header.is_2019) == (
        0x0200,
        126,
        "123456789012",
        False,
    )
    assert isinstance(msg, Location)
    assert (msg.alarm, msg.status, msg.lat_e6, msg.lon_e6) == (1, 2, 12222222, 132444444)
    assert (msg.altitude_m, msg.speed_dkmh, msg.direction, msg.time) == (40, 60, 0, "181015101010")
    assert msg.extra_values() == {"mileage_km": pytest.approx(10.0), "fuel_l": pytest.approx(12.5)}
    # 2018-10-15 10:10:10 China Standard Time is 02:10:10 UTC
    assert msg.ts_ms == calendar.timegm((2018, 10, 15, 2, 10, 10)) * 1000


def test_smallchi_device_report_with_signal_and_satellites() -> None:
    header, msg = roundtrip(SC_0200_DEVICE)
    assert header.phone == "040021682087" and header.serial == 7436
    assert isinstance(msg, Location)
    assert msg.status & Status.ACC_ON == 0 and msg.status & Status.POSITIONED
    assert msg.status & Status.GPS and msg.status & Status.BEIDOU
    assert (msg.lat, msg.lon) == (22.76875, 113.792664)
    values = msg.extra_values()
    assert values["mileage_km"] == pytest.approx(0x054C7D / 10)
    assert (values["signal"], values["satellites"]) == (0x1D, 13)
    assert [i for i, _ in msg.extras] == [0x01, 0x02, 0x03, 0x25, 0x2B, 0x30, 0x31]


def test_smallchi_batch_upload() -> None:
    header, msg = roundtrip(SC_0704)
    assert header.serial == 8888 and header.phone == "112233445566"
    assert isinstance(msg, BatchLocation) and msg.kind == BatchLocation.NORMAL
    first, second = msg.items
    assert (first.alarm, first.lat_e6, first.speed_dkmh, first.time) == (
        1,
        12222222,
        60,
        "180715101010",
    )
    assert (second.alarm, second.status, second.lat_e6, second.lon_e6) == (
        2,
        1,
        13333333,
        132555555,
    )
    assert (second.speed_dkmh, second.direction, second.time) == (54, 120, "180715101030")
    assert second.extra_values() == {"mileage_km": pytest.approx(9.6), "fuel_l": pytest.approx(6.6)}


def test_smallchi_registration_2013_and_2019() -> None:
    header, msg = roundtrip(SC_0100)
    assert header.serial == 10 and header.terminal == "123456789"
    assert msg == Register(40, 50, "12340", "smallchi123000000000", "CHI1230", 1, "粤A12345")
    header, msg = roundtrip(SC_0100_2019)
    assert header.version == 1 and header.terminal == "123456789"
    assert isinstance(msg, Register)
    assert (msg.maker, msg.terminal_id, msg.plate) == (
        "1234".zfill(11),
        "CHI123".zfill(30),
        "粤A12345",
    )
    assert msg.model == "smallchi123".zfill(30)


def test_smallchi_platform_messages() -> None:
    header, msg = roundtrip(SC_8100)
    assert header.terminal == "12345678900"
    assert msg == RegisterResponse(100, RegisterResponse.OK, "123456")
    assert roundtrip(SC_8100_REFUSED)[1] == RegisterResponse(100, RegisterResponse.NO_TERMINAL, "")
    assert roundtrip(SC_0102)[1] == Authenticate("456121111")
    assert roundtrip(SC_0102)[0].serial == 12345
    assert roundtrip(SC_8001)[1] == PlatformResponse(100, 0x0200, PlatformResponse.OK)
    # JT808_0x8203Test: the body alone
    assert AlarmConfirm.decode(h("15B20000007B"), False) == AlarmConfirm(5554, 123)
    assert AlarmConfirm(5554, 123).encode(False) == h("15B20000007B")


def test_xtream_2019_frames() -> None:
    header, msg = roundtrip(XT_0200)
    assert header.version == 1 and header.phone == "00000000013912344329"
    assert isinstance(msg, Location)
    assert (msg.alarm, msg.status, msg.lat_e6, msg.lon_e6) == (111, 22, 31234567, 121987654)
    assert (msg.altitude_m, msg.speed_dkmh, msg.direction) == (123, 66, 3)
    assert msg.lat == -31.234567  # status 22 has bit 2: south
    assert msg.extra_values() == {"fuel_l": pytest.approx(10.0), "mileage_km": pytest.approx(1.2)}
    assert msg.ts_ms == cst_ms(2025, 1, 29, 22, 33, 44)
    _, batch = roundtrip(XT_0704)
    assert isinstance(batch, BatchLocation)
    assert [i.altitude_m for i in batch.items] == [666, 777]
    assert roundtrip(XT_8203)[1] == AlarmConfirm(321, 270532608)
    assert roundtrip(XT_8100)[1] == RegisterResponse(111, 0, "ok..ok..ok")


def test_fakeyanss_frames() -> None:
    header, msg = roundtrip(FK_0200)
    assert header.phone == "223456789015" and header.serial == 0
    assert isinstance(msg, Location) and msg.time == "230125145158"
    with pytest.raises(Jt808Error, match="check code"):
        decode_frame(FK_0200_BAD)


# --- time -----------------------------------------------------------------------------------


def test_bcd_time_is_china_standard_time() -> None:
    assert bcd_time_to_ms("240101000000") == cst_ms(2024, 1, 1) == 1704038400000
    assert ms_to_bcd_time(1704038400000) == "240101000000"  # 2023-12-31 16:00 UTC
    for bad in ("241301000000", "240230000000", "240101240000", "2401010000", "24010100000a"):
        with pytest.raises(Jt808Error):
            bcd_time_to_ms(bad)


@given(st.integers(min_value=cst_ms(2000, 1, 1) // 1000, max_value=cst_ms(2099, 12, 31) // 1000))
def test_bcd_time_roundtrip(seconds: int) -> None:
    ms = seconds * 1000
    bcd = ms_to_bcd_time(ms)
    assert bcd_time_to_ms(bcd) == ms
    assert bcd == datetime.fromtimestamp(seconds, UTC).astimezone(CST).strftime("%y%m%d%H%M%S")


# --- round-trip properties --------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
text = st.text(st.characters(codec="gbk", exclude_characters="\x00"), max_size=12)
bcd_time = st.integers(0, 99).map(lambda y: f"{y:02d}0102030405")
extras = st.lists(st.tuples(u8, st.binary(max_size=12)), max_size=5).map(tuple)
locations = st.builds(Location, u32, u32, u32, u32, u16, u16, u16, bcd_time, extras)


def headers(msg_id: st.SearchStrategy[int] = u16) -> st.SearchStrategy[Header]:
    v2013 = st.builds(
        Header, msg_id, u16, st.text("0123456789", min_size=12, max_size=12), st.none()
    )
    v2019 = st.builds(
        Header, msg_id, u16, st.text("0123456789", min_size=20, max_size=20), st.just(1)
    )
    return st.one_of(v2013, v2019)


@given(headers(), st.binary(max_size=1023), st.integers(0, 7), st.integers(0, 1))
def test_frame_roundtrip(header: Header, body: bytes, enc: int, reserved: int) -> None:
    header = Header(header.msg_id, header.serial, header.phone, header.version, enc, reserved)
    raw = encode_frame(header, body)
    assert raw[0] == raw[-1] == 0x7E and 0x7E not in raw[1:-1]
    assert decode_frame(raw) == Frame(header, body)


@given(st.binary(max_size=300))
def test_escape_roundtrip(data: bytes) -> None:
    assert unescape(escape(data)) == data
    assert 0x7E not in escape(data)


@given(
    st.one_of(
        locations,
        st.builds(BatchLocation, st.integers(0, 1), st.lists(locations, max_size=4).map(tuple)),
        st.builds(
            Register,
            u16,
            u16,
            st.text("ABC123", max_size=5),
            st.text(st.characters(codec="gbk", exclude_characters="\x00"), max_size=10),
            st.text("ABC123", max_size=7),
            u8,
            text,
        ),
        st.builds(RegisterResponse, u16, st.just(0), text),
        st.builds(PlatformResponse, u16, u16, u8),
        st.builds(TerminalResponse, u16, u16, u8),
        st.builds(AlarmConfirm, u16, u32),
        st.builds(Heartbeat),
    ),
    st.booleans(),
)
def test_message_roundtrip(msg: object, v2019: bool) -> None:
    body = msg.encode(v2019)  # type: ignore[attr-defined]
    assert decode_body(msg.msg_id, body, v2019) == msg  # type: ignore[attr-defined]


@given(text, st.text("0123456789", max_size=15), st.text("0123456789.v", max_size=20))
def test_authenticate_2019_roundtrip(code: str, imei: str, software: str) -> None:
    msg = Authenticate(code, imei, software)
    assert decode_body(0x0102, msg.encode(True), True) == msg
    assert decode_body(0x0102, Authenticate(code).encode(False), False) == Authenticate(code)


@given(headers(st.just(0x0704)), st.binary(min_size=1, max_size=5000), st.integers(10, 1023))
def test_subpackages_reassemble(header: Header, body: bytes, max_body: int) -> None:
    frames = encode_packets(header, body, max_body)
    assert len(frames) == -(-len(body) // max_body)
    reader, parts = FrameReader(), Reassembler(max_total=1000)
    got = [parts.add(f, 0) for f in reader.feed(b"".join(frames)) if isinstance(f, Frame)]
    assert got[:-1] == [None] * (len(frames) - 1)
    whole = got[-1]
    assert whole is not None and whole.body == body
    assert whole.header.serial == header.serial and whole.header.packet is None


@given(st.lists(st.binary(max_size=200), max_size=6), st.data())
def test_reader_splits_any_chunking(bodies: list[bytes], data: st.DataObject) -> None:
    frames = [encode_frame(Header(0x0200, i, "13800000000", None), b) for i, b in enumerate(bodies)]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    reader, got = FrameReader(), []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[a:b])
    assert [f.body for f in got if isinstance(f, Frame)] == bodies
    assert not [f for f in got if isinstance(f, BadFrame)]


# --- fuzz: nothing but Jt808Error ---------------------------------------------------------------

RECORDED = [
    SC_0200,
    SC_0200_DEVICE,
    SC_0704,
    SC_0100,
    SC_0100_2019,
    SC_8100,
    SC_0102,
    XT_0200,
    XT_0704,
    XT_8203,
    FK_0200,
]


def _decode_all(raw: bytes) -> None:
    try:
        frame = decode_frame(raw)
    except Jt808Error:
        return
    try:
        msg = decode_body(frame.header.msg_id, frame.body, frame.header.is_2019)
    except Jt808Error:
        return
    if isinstance(msg, Location):
        try:
            position_record(msg)
            msg.extra_values()
        except Jt808Error:
            pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(RECORDED),
    st.lists(st.tuples(st.integers(0, 10_000), u8), max_size=6),
    st.integers(0, 200),
    st.booleans(),
)
def test_fuzz_mutated_frames(raw: bytes, flips: list[tuple[int, int]], cut: int, fix: bool) -> None:
    data = bytearray(raw)
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut:
        del data[-cut % len(data) :]
    if fix and len(data) > 3:  # a valid check code, so that the body decoders are reached
        try:
            inner = bytearray(unescape(bytes(data[1:-1]).replace(b"\x7e", b"")))
        except Jt808Error:
            inner = bytearray()
        if inner:
            inner[-1] = checksum(bytes(inner[:-1]))
            data = bytearray(b"\x7e" + escape(bytes(inner)) + b"\x7e")
    _decode_all(bytes(data))
    for item in FrameReader().feed(bytes(data)):
        assert isinstance(item, Frame | BadFrame)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_all(data)
    _decode_all(b"\x7e" + data + b"\x7e")
    for item in FrameReader(max_frame=256).feed(data):
        assert isinstance(item, Frame | BadFrame)


@settings(max_examples=300)
@given(st.integers(0, 0xFFFF), st.binary(max_size=200), st.booleans())
def test_fuzz_bodies(msg_id: int, body: bytes, v2019: bool) -> None:
    with contextlib.suppress(Jt808Error):
        decode_body(msg_id, body, v2019)


@given(u8.filter(lambda v: v != 1), st.binary(max_size=40), st.booleans())
def test_a_2019_header_of_any_version_but_1_is_refused_never_misread(
    version: int, body: bytes, sub: bool
) -> None:
    packet = (2, 1) if sub else None
    raw = encode_frame(Header(0x0200, 5, "13800000001", version, packet=packet), body)
    with pytest.raises(VersionError, match=f"protocol version {version};"):
        decode_frame(raw)
    (bad,) = FrameReader().feed(raw)
    assert isinstance(bad, BadFrame) and isinstance(bad.error, VersionError)
    session = Session(directory())
    events = session.feed(raw, 0)
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [(Problem, "bad_version")]


@given(st.integers(1, 255), st.binary(max_size=40), st.booleans())
def test_a_version_byte_garbled_on_the_line_is_a_bad_frame_not_a_bad_version(
    flip: int, body: bytes, sub: bool
) -> None:
    packet = (2, 1) if sub else None
    frame = encode_frame(Header(0x0200, 5, "13800000001", 1, packet=packet), body)
    data = bytearray(unescape(frame[1:-1]))
    data[4] ^= flip  # the protocol version byte; the check code is left as sent
    raw = b"\x7e" + escape(bytes(data)) + b"\x7e"
    with pytest.raises(Jt808Error, match="check code") as caught:
        decode_frame(raw)
    assert not isinstance(caught.value, VersionError)
    (bad,) = FrameReader().feed(raw)
    assert isinstance(bad, BadFrame) and not isinstance(bad.error, VersionError)
    events = Session(directory()).feed(raw, 0)
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [(Problem, "bad_frame")]


@given(headers(), st.binary(max_size=60))
def test_a_2013_terminal_setting_bit_14_is_read_by_its_frames_length(
    header: Header, body: bytes
) -> None:
    header = replace(header, version=None, phone=header.phone[-12:])
    data = bytearray(unescape(encode_frame(header, body)[1:-1])[:-1])
    data[2] |= 0x40  # reserved in 2013: the frame is 5 bytes shorter than with a 2019 header
    raw = escape(bytes(data) + bytes((checksum(bytes(data)),)))
    assert decode_frame(raw) == Frame(header, body)


def test_reader_reports_junk_and_oversize_and_recovers() -> None:
    good = encode_frame(Header(0x0002, 1, "13800000000"), b"")
    reader = FrameReader(max_frame=64)
    out = reader.feed(b"junk" + good + b"\x7e" + b"x" * 100 + good)
    assert [type(i).__name__ for i in out] == ["BadFrame", "Frame", "BadFrame", "Frame"]


# --- the session state machine ------------------------------------------------------------------


def _resend_request(e: object) -> bool:
    return isinstance(e, Send) and decode_frame(e.data).header.msg_id == 0x8003


def test_session_register_authenticate_report() -> None:
    s = Session(directory())
    phone = "013800000001"
    hdr = Header(0x0100, 7, phone)
    ev = s.feed(encode_frame(hdr, Register(44, 300, "M", "X", "T", 1, "whatever").encode(False)), 0)
    (resp,) = frames_of(ev)
    assert isinstance(resp, RegisterResponse) and resp.result == 0 and resp.ack_serial == 7
    assert s.state is State.REGISTERED
    # a location before authentication is refused
    loc = Location(0, 2, 1, 1, 0, 0, 0, "240101000000")
    ev = s.feed(encode_frame(Header(0x0200, 8, phone), loc.encode()), 0)
    assert frames_of(ev) == [PlatformResponse(8, 0x0200, PlatformResponse.FAILED)]
    ev = s.feed(
        encode_frame(Header(0x0102, 9, phone), Authenticate(resp.auth_code).encode(False)), 0
    )
    assert (
        frames_of(ev) == [PlatformResponse(9, 0x0102, 0), DriverRequest()]
        and s.state is State.AUTHENTICATED
    )
    ev = s.feed(encode_frame(Header(0x0200, 10, phone), loc.encode()), 5)
    pub = [e for e in ev if isinstance(e, Publish)]
    assert pub[0].vehicle == VehicleRef("t1", "bus-1") and pub[0].received_ms == 5
    assert pub[0].records[0]["ts"] == cst_ms(2024, 1, 1)
    assert frames_of(ev) == [PlatformResponse(10, 0x0200, 0)]
    # a vendor's additional item of a wrong length: the position is published, the broken item
    # counted (it was answered 2 and lost whole, helper-83)
    body = loc.encode() + bytes((0x01, 4, 0, 0, 0, 9)) + bytes((0x30, 4, 1))
    ev = s.feed(encode_frame(Header(0x0200, 11, phone), body), 6)
    (pub,) = [e for e in ev if isinstance(e, Publish)]
    assert pub.records[0]["ts"] == cst_ms(2024, 1, 1)
    (problem,) = [e for e in ev if isinstance(e, Problem)]
    assert problem.kind == "bad_extra" and "0x30 of 4 bytes overruns" in problem.detail
    assert frames_of(ev) == [PlatformResponse(11, 0x0200, 0)]
    assert Location.decode(body).extras == ((0x01, b"\0\0\0\t"),)
    # 0x8203 to the terminal, in its header version
    confirm = decode_frame(s.confirm_alarm(0, int(Alarm.EMERGENCY)))
    assert confirm.header.msg_id == 0x8203 and confirm.header.phone == phone


def test_session_by_plate_wrong_code_unknown_and_bad_bodies() -> None:
    s = Session(directory())
    phone = "013900000009"
    ev = s.feed(
        encode_frame(
            Header(0x0100, 1, phone), Register(0, 0, "", "", "", 1, "粤B00002").encode(False)
        ),
        0,
    )
    (resp,) = frames_of(ev)
    assert isinstance(resp, RegisterResponse) and resp.result == 0
    ev = s.feed(
        encode_frame(Header(0x0102, 2, phone), Authenticate(resp.auth_code + "x").encode(False)), 0
    )
    assert frames_of(ev) == [PlatformResponse(2, 0x0102, PlatformResponse.FAILED)]
    assert any(isinstance(e, Problem) and e.kind == "auth_failed" for e in ev)
    ev = s.feed(encode_frame(Header(0x0900, 3, phone), b"\x01"), 0)  # unsupported
    assert frames_of(ev) == [PlatformResponse(3, 0x0900, PlatformResponse.UNSUPPORTED)]
    ev = s.feed(encode_frame(Header(0x0200, 4, phone), b"\x00" * 5), 0)  # short body
    assert frames_of(ev) == [PlatformResponse(4, 0x0200, PlatformResponse.MESSAGE_ERROR)]
    bad = bytearray(encode_frame(Header(0x0002, 5, phone), b""))
    bad[-2] ^= 0xFF  # check code
    ev = s.feed(bytes(bad), 0)
    assert frames_of(ev) == [] and [e.kind for e in ev if isinstance(e, Problem)] == ["bad_frame"]
    ev = s.feed(
        encode_frame(
            Header(0x0100, 6, "013900000008"), Register(0, 0, "", "", "", 1, "nope").encode(False)
        ),
        0,
    )
    assert frames_of(ev) == [RegisterResponse(6, RegisterResponse.NO_VEHICLE, "")]


def test_each_sub_package_is_answered_by_its_serial_and_the_message_when_stored() -> None:
    """A stop-and-wait terminal sends a sub-package and waits for its 0x8001: none came, only
    one for the whole message by the first's serial, and its blind-area data never arrived
    (helper-83). A sub-package before authentication is refused at once, not kept."""
    s = Session(directory())
    phone = "013800000001"
    items = tuple(
        Location(0, 2, 31_000_000 + i, 121_000_000, 0, 300, 0, "240101000000") for i in range(60)
    )
    body = BatchLocation(BatchLocation.BACKFILL, items).encode()
    frames = encode_packets(Header(0x0704, 40, phone), body, 700)
    assert len(frames) == 3
    ev = s.feed(frames[0], 0)
    assert frames_of(ev) == [PlatformResponse(40, 0x0704, PlatformResponse.FAILED)]
    assert s._parts.pending == 0
    ev = s.feed(
        encode_frame(Header(0x0100, 1, phone), Register(0, 0, "", "", "", 1, "").encode(False)), 0
    )
    (resp,) = frames_of(ev)
    s.feed(encode_frame(Header(0x0102, 2, phone), Authenticate(resp.auth_code).encode(False)), 0)
    assert s.state is State.AUTHENTICATED
    answers = []
    asked = []
    for n, frame in enumerate(frames):  # a slow link: 50 s apart, 100 s in all
        ev = s.feed(frame, n * 50_000)
        asked += [e.detail for e in ev if isinstance(e, Problem) and e.kind == "packets_asked"]
        answers += frames_of([e for e in ev if not _resend_request(e)])
        published = [e for e in ev if isinstance(e, Publish)]
        assert len(published) == (n == 2)
    assert answers == [PlatformResponse(40 + n, 0x0704, 0) for n in range(3)]
    # silent 15 s and more, the message's missing sub-packages were asked for (0x8003)
    ask = "message 0x0704 of serial 40: sub-packages {} asked for again (0x8003)"
    assert asked == [ask.format("2, 3"), ask.format("3")]
    assert len(published[0].records) == 60


def test_answered_sub_packages_are_never_pushed_out_nor_kept_before_authentication() -> None:
    """An answered sub-package is gone from the terminal: the group holding it was pushed out by
    a ninth message, and a slow link's expired 60 s after its first part, so every position of
    the message was lost uncounted (helper-85). A registration's sub-packages were kept before
    authentication, 4 MB per connection."""
    s = authed()
    phone = "013800000001"
    body = BatchLocation(1, (Location(0, 2, 1, 1, 0, 0, 0, "240101000000"),) * 40).encode()
    messages = [encode_packets(Header(0x0704, 100 + 10 * m, phone), body, 700) for m in range(9)]
    for m in range(8):  # eight open, each answered for its first part
        assert frames_of(s.feed(messages[m][0], 0)) == [PlatformResponse(100 + 10 * m, 0x0704, 0)]
    ev = s.feed(messages[8][0], 0)  # a ninth waits: refused (sent again), not kept
    assert frames_of(ev) == [PlatformResponse(180, 0x0704, PlatformResponse.FAILED)]
    assert [e.kind for e in ev if isinstance(e, Problem)] == ["reassembly_full"]
    published = 0
    for m in range(8):  # the eight complete, none lost
        for frame in messages[m][1:]:
            published += sum(len(e.records) for e in s.feed(frame, 0) if isinstance(e, Publish))
    assert published == 8 * 40
    fresh = Session(directory())
    reg = Register(0, 0, "", "", "", 1, "x" * 3000).encode(False)
    parts = encode_packets(Header(0x0100, 1, phone), reg, 1000)
    assert len(parts) == 4
    for frame in parts:
        serial = decode_frame(frame).header.serial
        assert frames_of(fresh.feed(frame, 0)) == [PlatformResponse(serial, 0x0100, 1)]
        assert fresh._parts.pending == 0


@pytest.mark.parametrize("v2019", [False, True])
def test_a_drivers_ic_card_names_the_driver_of_the_positions_after_it(v2019: bool) -> None:
    """0x0702 was answered 3 (unsupported): the driver never reached the hub, and fatigue was
    the vehicle's (helper-83). The gateway asks for it at authentication (0x8702); a card in
    puts its certificate code on the positions after it, a card out takes it off."""
    card = DriverIdentity(
        1,
        "240101080000",
        0,
        "张三",
        "320102198001011234",
        "南京市交通局",
        "20300101",
        "320102198001011234" if v2019 else "",
    )
    assert decode_body(0x0702, card.encode(v2019), v2019) == card
    assert card.driver_id == "320102198001011234"
    out = DriverIdentity(2, "240101120000")
    assert decode_body(0x0702, out.encode(v2019), v2019) == out
    unread = DriverIdentity(1, "240101080000", 2)  # the card locked
    assert decode_body(0x0702, unread.encode(v2019), v2019) == unread
    with pytest.raises(Jt808Error):
        decode_body(0x0702, card.encode(v2019)[:30], v2019)
    s = authed()
    phone = "013800000001"
    loc = Location(0, 2, 1, 1, 0, 0, 0, "240101080500").encode()

    def driver_of(serial: int) -> object:
        (pub,) = [
            e
            for e in s.feed(encode_frame(Header(0x0200, serial, phone), loc), 0)
            if isinstance(e, Publish)
        ]
        return pub.records[0].get("driver_id")

    assert driver_of(10) is None
    ev = s.feed(encode_frame(Header(0x0702, 11, phone), card.encode(False)), 0)
    assert frames_of(ev) == [PlatformResponse(11, 0x0702, 0)]
    assert driver_of(12) == "320102198001011234"
    s.feed(encode_frame(Header(0x0702, 13, phone), unread.encode(False)), 0)
    assert driver_of(14) == "320102198001011234"  # a card not read changes nobody
    s.feed(encode_frame(Header(0x0702, 15, phone), out.encode(False)), 0)
    assert driver_of(16) is None


def test_a_card_that_is_not_text_names_nobody_and_never_breaks_the_link() -> None:
    """A certificate padded with 0xFF became a driver_id the uplink could not encode: every
    connection of the vehicle ended in internal_error (helper-86). Padding and bytes that are
    not GBK are left out; a card that says no certificate nor ID number names nobody (a name
    is no identity); a status byte that is neither in nor out is an error, not a card out."""
    s = authed()
    phone = "013800000001"
    body = bytearray(
        DriverIdentity(1, "240101080000", 0, "王五", "", "局", "20300101").encode(False)
    )
    at = body.index(b"\0" * 20)  # the certificate field, after the name
    body[at : at + 20] = b"\x00\x00" + b"3201021980010112" + b"\xff\xff"
    card = decode_body(0x0702, bytes(body), False)
    assert isinstance(card, DriverIdentity) and card.driver_id == "3201021980010112"
    s.feed(encode_frame(Header(0x0702, 3, phone), bytes(body)), 0)
    loc = Location(0, 2, 1, 1, 0, 0, 0, "240101090000").encode()
    (pub,) = [
        e for e in s.feed(encode_frame(Header(0x0200, 4, phone), loc), 0) if isinstance(e, Publish)
    ]
    assert pub.records[0]["driver_id"] == "3201021980010112"
    orjson.dumps(pub.records)  # what the uplink does with it
    nameless = DriverIdentity(1, "240101080000", 0, "王五", "", "局", "20300101")
    assert nameless.driver_id == ""
    ev = s.feed(encode_frame(Header(0x0702, 5, phone), nameless.encode(False)), 0)
    assert [e.kind for e in ev if isinstance(e, Problem)] == ["driver_card_unread"]
    with pytest.raises(Jt808Error, match="status 0"):
        decode_body(0x0702, b"\x00" + bytes.fromhex("240101080000"), False)


def test_a_blind_area_upload_from_before_the_card_names_no_driver() -> None:
    """Card B went in at 10:00; positions of 08:00-09:00 uploaded after it were B's: A's hours
    counted for B (helper-86). Only positions from the card's time on carry its driver."""
    s = authed()
    phone = "013800000001"
    card = DriverIdentity(1, "240101100000", 0, "B", "B-CERT", "局", "20300101")
    s.feed(encode_frame(Header(0x0702, 3, phone), card.encode(False)), 0)
    items = tuple(
        Location(0, 2, 1, 1, 0, 0, 0, t) for t in ("240101080000", "240101090000", "240101100500")
    )
    ev = s.feed(encode_frame(Header(0x0704, 4, phone), BatchLocation(1, items).encode()), 0)
    (pub,) = [e for e in ev if isinstance(e, Publish)]
    assert [r.get("driver_id") for r in pub.records] == [None, None, "B-CERT"]


def test_after_a_reconnect_a_report_without_a_fix_may_clear_bits_of_the_last_link() -> None:
    """An emergency raised and confirmed in a tunnel, the link dropped there: the first report
    without a fix of the new connection was dropped, and the alarm stayed (helper-86). The first
    goes (it may clear bits the hub holds), the next without bits no more."""
    s = authed()
    phone = "013800000001"
    lost = Location(0, 0, 31_000_000, 121_000_000, 0, 0, 0, "240101080000").encode()
    kinds = []
    for serial in (5, 6):
        ev = s.feed(encode_frame(Header(0x0200, serial, phone), lost), 0)
        pubs = [e for e in ev if isinstance(e, Publish)]
        kinds.append(pubs[0].records[0]["alarm_flags"] if pubs else "dropped")
    assert kinds == [0, "dropped"]


def test_a_terminal_clock_on_utc_is_said_once() -> None:
    """A terminal whose clock ran on UTC (its BCD time read as Beijing time, 8 h behind) was
    taken silently: its track 8 h in the past, night and fatigue rules at the wrong hours
    (helper-83). The gateway says it once per connection; blind-area uploads are old anyway."""
    now = cst_ms(2024, 1, 1, 12)  # 12:00 Beijing time is 04:00 UTC
    s = authed()
    skews = []
    for serial, minute in ((10, 0), (11, 1), (12, 2), (13, 3)):  # a report a minute
        utc_clock = Location(0, 2, 1, 1, 0, 0, 0, f"24010104{minute:02d}00")
        header = Header(0x0200, serial, "013800000001")
        ev = s.feed(encode_frame(header, utc_clock.encode()), now + minute * 60_000)
        skews += [e for e in ev if isinstance(e, Problem)]
        assert [type(e) for e in ev if isinstance(e, Publish)] == [Publish]  # still published
    assert [p.kind for p in skews] == ["clock_skew"]  # a minute on, by the same offset; once
    assert "8.0 h behind" in skews[0].detail and "UTC" in skews[0].detail
    # a stored report sent again after a 2 h outage, then live ones on time: no warning
    s = authed()
    for serial, (stamp, at) in enumerate(
        (("240101100000", 0), ("240101120100", 60_000), ("240101120200", 120_000))
    ):
        body = Location(0, 2, 1, 1, 0, 0, 0, stamp).encode()
        ev = s.feed(encode_frame(Header(0x0200, 30 + serial, "013800000001"), body), now + at)
        assert not [e for e in ev if isinstance(e, Problem)], stamp
    utc_clock = Location(0, 2, 1, 1, 0, 0, 0, "240101040000")
    # a right clock, a report sent again minutes later, and an old blind-area upload: nothing
    s = authed()
    for msg_id, body in (
        (0x0200, Location(0, 2, 1, 1, 0, 0, 0, "240101115800").encode()),
        (0x0704, BatchLocation(1, (utc_clock,)).encode()),
    ):
        ev = s.feed(encode_frame(Header(msg_id, 20, "013800000001"), body), now)
        assert not [e for e in ev if isinstance(e, Problem)]


@pytest.mark.parametrize(
    ("stamps", "said"),
    [
        # stored reports drained as 0x0200 at their recorded pace, 1 h 43 min behind: no clock
        (("240101101700", "240101101800", "240101101900", "240101102000"), None),
        # and 25 h 43 min behind (a day's blind area)
        (("231231101700", "231231101800", "231231101900", "231231102000"), None),
        # a clock reset to 2000-01-01: far behind, said
        (("000101000000", "000101000100", "000101000200", "000101000300"), "behind"),
        # 10 minutes ahead: no stored report is from the future, said
        (("240101121000", "240101121100", "240101121200", "240101121300"), "ahead of"),
        # a minute ahead: the hub refuses it (more than 30 s), so it is said (it was not under
        # the 5 minutes the hub once allowed, and every position went to dead letters unsaid)
        (("240101120100", "240101120200", "240101120300", "240101120400"), "60 s ahead of"),
        # a time zone's mistake (a clock on UTC+5): said
        (("240101090000", "240101090100", "240101090200", "240101090300"), "3.0 h behind"),
    ],
)
def test_a_paced_drain_of_stored_reports_is_no_clock_but_a_clock_is(
    stamps: tuple[str, ...], said: str | None
) -> None:
    """A terminal that sends its stored reports as 0x0200 after an outage, at the pace they were
    recorded, kept one offset for a minute and was called a wrong clock (helper-86). Behind, only
    a time zone's whole hours or a reset clock are a clock; ahead always is."""
    now = cst_ms(2024, 1, 1, 12)
    s = authed()
    problems = []
    for minute, stamp in enumerate(stamps):
        body = Location(0, 2, 1, 1, 0, 0, 0, stamp).encode()
        ev = s.feed(
            encode_frame(Header(0x0200, 40 + minute, "013800000001"), body), now + minute * 60_000
        )
        problems += [e for e in ev if isinstance(e, Problem)]
    if said is None:
        assert problems == []
    else:
        assert [p.kind for p in problems] == ["clock_skew"] and said in problems[0].detail


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("苏A·D5678", "苏AD5678"),  # the docs' way and parameter 0x0083's usual value
        ("苏AD5678", "苏A·D5678\0\0"),  # firmware that ends its STRING with NULs
        ("粤B 00002", "粤b-00002"),
        ("京ＡＢ１２３", "京AB123"),  # full-width letters and digits
    ],
)
def test_a_plate_is_found_however_it_is_written_and_a_nul_ended_code_authenticates(
    configured: str, sent: str
) -> None:
    """A terminal whose plate was 苏AD5678 for a vehicle configured 苏A·D5678 got "vehicle not in
    the database", and one ending its auth code with a NUL failed and registered again, for
    good (helper-83)."""
    d = Directory([Vehicle("truck", configured)])  # type: ignore[list-item]
    s = Session(d)
    phone = "013900000007"
    reg = Register(0, 0, "", "", "", 1, "").encode(False)  # the plate is the rest of the body
    ev = s.feed(encode_frame(Header(0x0100, 1, phone), reg + sent.encode("gb18030")), 0)
    (resp,) = frames_of(ev)
    assert isinstance(resp, RegisterResponse) and resp.result == RegisterResponse.OK
    code = Authenticate(resp.auth_code + "\0").encode(False)
    ev = s.feed(encode_frame(Header(0x0102, 2, phone), code), 0)
    assert (
        frames_of(ev) == [PlatformResponse(2, 0x0102, 0), DriverRequest()]
        and s.state is State.AUTHENTICATED
    )
    assert s.vehicle == VehicleRef("t1", "truck")


def test_position_record_rules() -> None:
    base = Location(
        int(Alarm.OVERSPEED),
        int(Status.POSITIONED | Status.WEST | Status.ACC_ON),
        31_000_000,
        121_000_000,
        50,
        655,
        90,
        "240101000000",
    )
    rec = position_record(base)
    assert rec == {
        "ts": cst_ms(2024, 1, 1),
        "lat": 31.0,
        "lon": -121.0,
        "speed_kmh": 65.5,
        "heading_deg": 90,
        "acc_on": True,
        "alarm_flags": 2,
        "alt_m": 50,
    }
    assert position_record(Location(0, 0, 1, 1, 0, 0, 0, "240101000000")) == "no_fix"
    # no fix but an emergency (the last fix repeated, as many terminals do): kept for its bits,
    # its place and speed not taken
    sos = Location(
        int(Alarm.EMERGENCY),
        int(Status.ACC_ON),
        31_000_000,
        121_000_000,
        50,
        655,
        90,
        "240101000000",
    )
    assert position_record(sos) == {
        "ts": cst_ms(2024, 1, 1),
        "lat": 0.0,
        "lon": 0.0,
        "speed_kmh": 0.0,
        "heading_deg": 0,
        "acc_on": True,
        "alarm_flags": int(Alarm.EMERGENCY),
    }
    assert position_record(Location(1, 0, 1, 1, 0, 0, 0, "241301000000")) == "bad_time"
    # without a fix and without bits, after a report with bits: it goes, for the bits it clears
    cleared = position_record(Location(0, 0, 1, 1, 0, 0, 0, "240101000000"), clearing=True)
    assert isinstance(cleared, dict) and cleared["alarm_flags"] == 0 and cleared["lat"] == 0
    # bits 15-17 are the 2019 standard's: a 2013 terminal's are its vendor's, not alarms
    vendor = Location((1 << 15) | (1 << 17) | 1, 2, 1, 1, 0, 0, 0, "240101000000")
    assert cast(dict, position_record(vendor, v2019=False))["alarm_flags"] == 1
    assert cast(dict, position_record(vendor, v2019=True))["alarm_flags"] == vendor.alarm
    # and bit 31 (illegal door opening of 2013) is reserved in 2019
    door = Location((1 << 31) | 1, 2, 1, 1, 0, 0, 0, "240101000000")
    assert cast(dict, position_record(door, v2019=True))["alarm_flags"] == 1
    assert cast(dict, position_record(door, v2019=False))["alarm_flags"] == door.alarm
    # a speed, heading or place that cannot be, with an alarm bit: the bits alone go on
    for bad in (
        Location(1, 2, 1, 1, 0, 3001, 0, "240101000000"),
        Location(1, 2, 1, 1, 0, 0, 361, "240101000000"),
        Location(1, 2, 91_000_000, 1, 0, 0, 0, "240101000000"),
    ):
        rec = position_record(bad)
        assert isinstance(rec, dict), bad
        assert (rec["lat"], rec["lon"], rec["speed_kmh"], rec["alarm_flags"]) == (0, 0, 0, 1)
    assert position_record(Location(0, 2, 1, 1, 0, 0, 0, "241301000000")) == "bad_time"
    assert position_record(Location(0, 2, 91_000_000, 1, 0, 0, 0, "240101000000")) == "bad_position"
