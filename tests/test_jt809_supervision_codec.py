"""The alarm supervision (报警督办) of JT/T 809: 0x9400 / 0x9401 and 0x1400 / 0x1401, checked
against SmallChi/JT809's test vectors, round trips and arbitrary bytes."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.jt809 import (
    DownWarnMsg,
    Header,
    Jt809Error,
    MsgId,
    SubId,
    SuperviseAnswer,
    SuperviseRequest,
    UnsupportedError,
    WarnMsg,
    decode_body,
    decode_frame,
    decode_supervise_answer,
    encode_frame,
    warn_source,
    warn_type,
)

# SmallChi/JT809 src/JT809.Protocol.Test/JT809SubMessageBody/JT809_0x9400_0x9401Test.cs (Test1):
# source 1 (terminal), type 0x0002 (fatigue), 2018-09-27 10:24 China time, id 0x123FFAA1, end
# an hour later, level 3, smallchi / 12345678901 / 123456@qq.com
REQ_9401 = bytes.fromhex(
    "010002000000005BAC3F40123FFAA1000000005BAC4D5003736D616C6C636869000000000000000031323334"
    "353637383930310000000000000000003132333435364071712E636F6D0000000000000000000000000000"
    "0000000000"
)
# SmallChi/JT809 src/JT809.Protocol.Test/JT809Packages/JT809_0x9400_0x9401PackageTest.cs
# (Test2): the whole 2011 frame, serial 1666, access code 20180920, key 9999, 粤A12345 yellow
FRAME_9400 = bytes.fromhex(
    "5B000000920000068294000133EFB8010000000000270FD4C1413132333435000000000000000000000000"
    "000294010000005C010002000000005A01AC3F40123FFAA1000000005A01AC4D5003736D616C6C6368690000"
    "00000000000031323334353637383930310000000000000000003132333435364071712E636F6D000000"
    "00000000000000000000000000000000BAD85D"
)
# SmallChi/JT809 src/JT809.Protocol.Test/JT809SubMessageBody/JT809_0x1400_0x1401Test.cs:
# supervision id 9898, result 0 (处理中)
ACK_1401 = bytes.fromhex("000026AA00")


def _smallchi_request() -> SuperviseRequest:
    return SuperviseRequest(
        1, 0x0002, 1538015040, 0x123FFAA1, 1538018640, 3, "smallchi", "12345678901",
        "123456@qq.com",
    )  # fmt: skip


def test_9401_body_vector() -> None:
    assert _smallchi_request().encode() == REQ_9401
    assert SuperviseRequest.decode(REQ_9401) == _smallchi_request()


def test_9400_frame_vector_2011() -> None:
    data = _smallchi_request().encode()
    body = DownWarnMsg("粤A12345", 2, SubId.WARN_URGE_TODO_REQ, data).encode(False)
    header = Header(MsgId.DOWN_WARN_MSG, 1666, 20180920, (1, 0, 0), False, 9999)
    assert encode_frame(header, body) == FRAME_9400
    frame = decode_frame(FRAME_9400[1:-1].replace(b"\x5a\x01", b"\x5b"), False)
    msg = decode_body(frame.header.msg_id, frame.body, False)
    assert isinstance(msg, DownWarnMsg)
    assert (msg.plate, msg.color, msg.sub_id) == ("粤A12345", 2, 0x9401)
    assert SuperviseRequest.decode(msg.data) == _smallchi_request()


def test_9400_2019_has_no_vehicle_header() -> None:
    data = _smallchi_request().encode(True)
    body = DownWarnMsg("", 0, SubId.WARN_URGE_TODO_REQ, data).encode(True)
    assert body == b"\x94\x01\x00\x00\x00\x5c" + data
    assert DownWarnMsg.decode(body, True) == DownWarnMsg("", 0, 0x9401, data)


def test_1401_vector() -> None:
    assert SuperviseAnswer(9898, 0).encode() == ACK_1401
    msg = WarnMsg("苏AD1234", 2, SubId.WARN_ADVISE, ACK_1401)
    assert decode_supervise_answer(WarnMsg.decode(msg.encode(False)), False) == SuperviseAnswer(
        9898, 0
    )
    msg19 = WarnMsg.decode(msg.encode(True), True)
    assert decode_supervise_answer(msg19, True) == SuperviseAnswer(9898, 0)


def test_1401_of_another_sub_type_is_unsupported() -> None:
    with contextlib.suppress(UnsupportedError):
        decode_supervise_answer(WarnMsg("", 0, 0x1402, ACK_1401), True)
        raise AssertionError("a 0x1402 is not a 0x1401")


def test_warn_types_of_the_hubs_kinds() -> None:
    assert warn_type("overspeed") == 0x0001
    assert warn_type("fatigue") == 0x0002
    assert warn_type("terminal_emergency") == 0x0003
    assert warn_type("forbidden_area") == 0x0004
    assert warn_type("corridor") == 0x000B
    assert warn_type("terminal_off_route") == 0x000B  # 808 bit 23 路线偏离
    assert warn_type("terminal_route") == 0x000E  # bit 21 进出路线: no deviation
    assert warn_type("terminal_area") == 0x000E  # bit 20 进出区域: in or out unsaid
    assert warn_type("fatigue_daily") == 0x000D
    assert warn_type("night_ban") == 0x000E  # no code of its own: other
    assert warn_type("offline") == 0x000E
    assert (warn_source("overspeed"), warn_source("terminal_overspeed")) == (3, 1)


_text = st.text(st.characters(codec="gb18030", exclude_characters="\x00"), max_size=4)


@given(
    src=st.integers(0, 255),
    wtype=st.integers(0, 0xFFFF),
    t=st.integers(0, 2**64 - 1),
    sid=st.integers(0, 2**32 - 1),
    end=st.integers(0, 2**64 - 1),
    level=st.integers(0, 255),
    who=_text,
    tel=_text,
    email=_text,
    plate=_text,
    v2019=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_request_round_trip(
    src: int, wtype: int, t: int, sid: int, end: int, level: int, who: str, tel: str,
    email: str, plate: str, v2019: bool,
) -> None:  # fmt: skip
    req = SuperviseRequest(src, wtype, t, sid, end, level, who, tel, email)
    body = DownWarnMsg(plate, 1, 0x9401, req.encode(v2019)).encode(v2019)
    msg = decode_body(0x9400, body, v2019)
    assert isinstance(msg, DownWarnMsg)
    assert msg.plate == ("" if v2019 else plate)
    assert SuperviseRequest.decode(msg.data, v2019) == req


@given(sid=st.integers(0, 2**32 - 1), result=st.integers(0, 255), v2019=st.booleans())
def test_answer_round_trip(sid: int, result: int, v2019: bool) -> None:
    body = WarnMsg("苏A1", 2, 0x1401, SuperviseAnswer(sid, result).encode()).encode(v2019)
    msg = decode_body(0x1400, body, v2019)
    assert isinstance(msg, WarnMsg)
    assert decode_supervise_answer(msg, v2019) == SuperviseAnswer(sid, result)


@given(data=st.binary(max_size=200), v2019=st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_bytes_raise_only_the_codec_error(data: bytes, v2019: bool) -> None:
    with contextlib.suppress(Jt809Error):
        msg = decode_body(0x9400, data, v2019)
        assert isinstance(msg, DownWarnMsg)
        SuperviseRequest.decode(msg.data, v2019)
    with contextlib.suppress(Jt809Error):
        up = decode_body(0x1400, data, v2019)
        assert isinstance(up, WarnMsg)
        decode_supervise_answer(up, v2019)
    for cls in (SuperviseRequest, SuperviseAnswer):
        with contextlib.suppress(Jt809Error):
            cls.decode(data, v2019)
