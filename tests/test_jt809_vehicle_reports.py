"""What a lower platform reports of a vehicle (0x1201 registration, 0x120C driver, 0x120D
e-waybill), read by the gateway: SmallChi/JT809's byte vectors decoded to their documented
values, round-trip properties through the gateway's session (encoded as a platform encodes,
read as the gateway reads), and bad input refused with a clear error and counted, never raised.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jt808_helpers import TWO_TENANTS, registry_of
from jt809_helpers import KEYS, config

from gateway.jt809.reports import WAYBILL_MAX_CHARS, Report
from gateway.jt809.session import LoggedIn, Problem, Session
from gateway.jt809.vehicles import PlateBook
from telemetry.jt809 import (
    BadBodyError,
    DriverInfo,
    Ewaybill,
    ExgMsg,
    FrameSplitter,
    Header,
    Login,
    MsgId,
    Register,
    SubId,
    VehicleReport,
    decode_body,
    decode_frame,
    decode_vehicle_report,
    encode_frame,
)

# JT809SubMessageBody/JT809_0x1200_0x1201Test.cs Test2: a 2011 registration, the model in 20
# bytes (61 in all)
REG_2011_61 = bytes.fromhex(
    "3131313131313131313100313131313131313131310031313131313131310000000000000000000000003131"
    "3131314141323232323232323232323232"
)
# Test_2019_3: a whole 2019 frame, 0x1200 of 粤A12345 (blue) with a 0x1201 of 110 bytes
FRAME_2019 = bytes.fromhex(
    "5B000000AC000006821200013415F4010000000000270F000000005E02A507B8D4C141313233343500000000"
    "0000000000000000000112010000006E313131313131313131310031313131313131313131003131313131313131"
    "0000000000000000000000000000000000000000000031323334353637383900000000000031313131314141"
    "0000000000000000000000000000000000000000000000323232323232323232323232006D7A5D"
)
# JT809_0x1200_0x120CTest.cs: a 2011 driver (276 bytes)
DRIVER_2011 = bytes.fromhex(
    "736D616C6C6368690000000000000000313233343536373839303132330000000000000033323130393837363534"
    "333231000000000000000000000000000000000000000000000000000000676F76"
) + bytes(197)
# JT809_0x1200_0x120DTest.cs: a waybill of 12 bytes
WAYBILL = bytes.fromhex("0000000C617364313233343536617364")


def test_smallchis_registrations_read_as_it_documents_them() -> None:
    assert Register.decode(REG_2011_61) == Register(
        "1111111111", "1111111111", "11111111", "11111AA", "222222222222", long_model=True
    )
    (inner,) = FrameSplitter().feed(FRAME_2019)
    assert isinstance(inner, bytes)
    frame = decode_frame(inner, True)
    exg = decode_body(frame.header.msg_id, frame.body, True)
    assert isinstance(exg, ExgMsg)
    assert (exg.plate, exg.color, exg.sub_id) == ("粤A12345", 1, SubId.REGISTER)
    assert decode_vehicle_report(exg, True) == Register(
        "1111111111", "1111111111", "11111111", "11111AA", "222222222222", imei="123456789"
    )
    # and written back byte for byte
    assert Register.decode(REG_2011_61).encode() == REG_2011_61
    assert decode_vehicle_report(exg, True).encode(True) == exg.data


def test_the_2011_standards_registration_of_49_bytes_reads_too() -> None:
    r = Register("3301000010", "70111", "ZT-8", "A1B2C3D", "013912344329")
    assert len(r.encode()) == 49
    assert Register.decode(r.encode()) == r


def test_a_waybill_length_in_characters_as_smallchi_writes_it_reads_too() -> None:
    text = "UN1203 汽油 18.5t"  # 15 characters, 17 bytes of GBK
    raw = text.encode("gb18030")
    assert Ewaybill.decode(len(text).to_bytes(4, "big") + raw) == Ewaybill(text)
    with pytest.raises(BadBodyError, match="EWAYBILL_LENGTH 16, 17 bytes follow"):
        Ewaybill.decode((16).to_bytes(4, "big") + raw)


def test_smallchis_driver_and_waybill_read_as_it_documents_them() -> None:
    assert DriverInfo.decode(DRIVER_2011) == DriverInfo(
        "smallchi", "1234567890123", "3210987654321", "gov"
    )
    assert DriverInfo.decode(DRIVER_2011).encode() == DRIVER_2011
    assert Ewaybill.decode(WAYBILL) == Ewaybill("asd123456asd")
    assert Ewaybill("asd123456asd").encode() == WAYBILL
    # 2019: the certificate's validity after the 276 bytes
    d = DriverInfo("张三", "320102199001011234", "3201000000001", "南京市交通运输局", 1_830_000_000)
    assert len(d.encode(True)) == 284
    assert DriverInfo.decode(d.encode(True), True) == d


@pytest.mark.parametrize(
    ("cls", "data", "v2019", "says"),
    [
        (Register, REG_2011_61[:60], False, "0x1201: 60 bytes, 49 or 61 expected"),
        (Register, REG_2011_61, True, "0x1201: 61 bytes, 110 expected"),
        (DriverInfo, DRIVER_2011, True, "0x120C: 276 bytes, 284 expected"),
        (DriverInfo, DRIVER_2011[:100], False, "0x120C: 100 bytes, 276 expected"),
        (Ewaybill, b"\x00\x00", False, "0x120D: 2 bytes, 4 at least"),
        (Ewaybill, b"\x00\x00\x00\x20abc", False, "EWAYBILL_LENGTH 32, 3 bytes follow"),
        (Ewaybill, b"\x00\x00\x00\x03a\x00b", False, "EWAYBILL_INFO has a 0x00 at byte 1"),
        (Ewaybill, b"\x00\x00\x00\x03\xff\xfe\x41", False, "EWAYBILL_INFO is not GBK text"),
        (DriverInfo, b"\x81\x20" + DRIVER_2011[2:], False, "DRIVER_NAME is not GBK text"),
        (Register, b"\xff" + REG_2011_61[1:], False, "PLATFORM_ID is not GBK text (byte 0: ff"),
    ],
)
def test_bad_bodies_are_refused_saying_why(
    cls: type[Register | DriverInfo | Ewaybill], data: bytes, v2019: bool, says: str
) -> None:
    with pytest.raises(BadBodyError, match=None) as err:
        cls.decode(data, v2019)
    assert says in str(err.value)


# --- through the gateway's session ---------------------------------------------------------------


@functools.cache
def _book() -> PlateBook:
    with tempfile.TemporaryDirectory(prefix="jt809-reports-") as tmp:
        return PlateBook(registry_of(Path(tmp), TWO_TENANTS).vehicles.values())


def _inner(code: int, v2019: bool, msg_id: int, body: bytes, encrypt: bool) -> bytes:
    t = 1_790_000_000 if v2019 else None
    header = Header(msg_id, 5, code, encrypted=encrypt, key=77 if encrypt else 0, time_s=t)
    (frame,) = FrameSplitter().feed(encode_frame(header, body, KEYS))
    assert isinstance(frame, bytes)
    return frame


def _session(v2019: bool) -> tuple[Session, int]:
    """A session logged in: acme-gps (2011, encrypted) or coach-gps (2019)."""
    code = 33000001 if v2019 else 20180920
    platforms = config().by_code()
    s = Session(platforms, _book(), "127.0.0.1", lambda: 1_790_000_000_000)
    p = platforms[code]
    body = Login(p.user_id, p.password.get_secret_value().encode(), "127.0.0.1", 1, code)
    acts = s.receive(_inner(code, v2019, MsgId.LOGIN, body.encode(v2019), not v2019))
    assert any(isinstance(a, LoggedIn) for a in acts), acts
    return s, code


def _send(s: Session, code: int, v2019: bool, plate: str, sub: int, data: bytes) -> list[object]:
    body = ExgMsg(plate, 2, sub, data).encode(v2019)
    return list(s.receive(_inner(code, v2019, MsgId.EXG_MSG, body, not v2019)))


def _gbk(width: int) -> st.SearchStrategy[str]:
    """Text of at most `width` bytes of GBK, without 0x00 (the padding)."""
    chars = st.characters(codec="gbk", exclude_characters="\x00")
    return st.text(chars, max_size=width).filter(lambda t: len(t.encode("gb18030")) <= width)


registers = st.builds(
    Register, _gbk(11), _gbk(11), _gbk(8), _gbk(7), _gbk(12), st.just(""), st.booleans()
)
registers_2019 = st.builds(
    Register, _gbk(11), _gbk(11), _gbk(30), _gbk(30), _gbk(13), _gbk(15), st.just(False)
)
drivers = st.builds(DriverInfo, _gbk(16), _gbk(20), _gbk(40), _gbk(200), st.integers(0, 2**64 - 1))
waybills = st.builds(Ewaybill, st.text(st.characters(codec="gbk", exclude_characters="\x00")))


@given(
    case=st.one_of(
        st.tuples(registers, st.just(False)),
        st.tuples(registers_2019, st.just(True)),
        st.tuples(drivers, st.just(True)),
        st.tuples(drivers.map(lambda d: DriverInfo(d.name, d.id_number, d.licence, d.org)),
                  st.just(False)),
        st.tuples(waybills, st.booleans()),
    )
)  # fmt: skip
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_each_report_goes_through_the_gateway_as_the_platform_wrote_it(
    case: tuple[VehicleReport, bool],
) -> None:
    item, v2019 = case
    s, code = _session(v2019)
    acts = _send(
        s, code, v2019, "苏AD1234" if not v2019 else "苏BK5678", item.sub_id, item.encode(v2019)
    )
    reports = [a for a in acts if isinstance(a, Report)]
    assert len(reports) == 1, acts
    r = reports[0]
    assert r.ref.vehicle == ("coach-07" if v2019 else "tanker-01")
    assert decode_vehicle_report(ExgMsg("x", 2, item.sub_id, item.encode(v2019)), v2019) == item
    if isinstance(item, Register):
        assert r.kind == "registration"
        assert (r.fields["terminal_model"], r.fields["sim"], r.fields["imei"]) == (
            item.model,
            item.sim,
            item.imei,
        )
    elif isinstance(item, DriverInfo):
        assert r.kind == "driver"
        assert (r.fields["name"], r.fields["id_number"], r.fields["licence"], r.fields["org"]) == (
            item.name,
            item.id_number,
            item.licence,
            item.org,
        )
        valid = item.valid_until_s
        assert r.fields["valid_until"] == (valid * 1000 if 0 < valid <= 253_402_300_799 else None)
    else:
        assert r.kind == "waybill"
        assert r.fields["text"] == item.text[:WAYBILL_MAX_CHARS]
        assert r.fields["truncated"] == (len(item.text) > WAYBILL_MAX_CHARS)
        assert any(isinstance(a, Problem) and a.kind == "waybill_truncated" for a in acts) == (
            len(item.text) > WAYBILL_MAX_CHARS
        )


@given(
    data=st.binary(max_size=400), sub=st.sampled_from([0x1201, 0x120C, 0x120D]), v2019=st.booleans()
)
@settings(max_examples=200, deadline=None)
def test_any_report_body_gives_actions_never_an_exception(
    data: bytes, sub: int, v2019: bool
) -> None:
    s, code = _session(v2019)
    acts = _send(s, code, v2019, "苏AD1234", sub, data)
    assert acts and all(isinstance(a, Report | Problem) for a in acts)


def test_a_bad_report_is_counted_and_the_link_goes_on() -> None:
    s, code = _session(False)
    bad = Ewaybill("UN1203 汽油 20t").encode()[:-2]  # EWAYBILL_LENGTH past the body
    (p,) = _send(s, code, False, "苏AD1234", SubId.REPORT_EWAYBILL_INFO, bad)
    assert isinstance(p, Problem) and p.kind == "bad_body" and p.platform == "acme-gps"
    assert "0x120D: EWAYBILL_LENGTH 15, 13 bytes follow" in p.text
    not_gbk = b"\x00\x00\x00\x02\xff\xff"
    (p,) = _send(s, code, False, "苏AD1234", SubId.REPORT_EWAYBILL_INFO, not_gbk)
    assert isinstance(p, Problem) and p.kind == "bad_body" and "not GBK" in p.text
    (p,) = _send(s, code, False, "苏AD1234", SubId.REGISTER, b"short")
    assert isinstance(p, Problem) and p.kind == "bad_body" and "49 or 61 expected" in p.text
    # a plate of no vehicle of the tenant (coach-co's is not acme-gps's)
    (p,) = _send(s, code, False, "苏BK5678", SubId.REPORT_EWAYBILL_INFO, Ewaybill("x").encode())
    assert isinstance(p, Problem) and p.kind == "unknown_vehicle"
    (r,) = _send(s, code, False, "苏AD1234", SubId.REPORT_EWAYBILL_INFO, Ewaybill("ok").encode())
    assert isinstance(r, Report) and r.fields == {"text": "ok", "truncated": False, "chars": 2}


def test_a_waybill_too_long_is_cut_saying_so() -> None:
    s, code = _session(True)
    text = "危" * 5000  # 10,000 bytes of GBK
    acts = _send(s, code, True, "苏BK5678", SubId.REPORT_EWAYBILL_INFO, Ewaybill(text).encode())
    (p,) = [a for a in acts if isinstance(a, Problem)]
    assert p.kind == "waybill_truncated" and "5000 characters cut to the first 4096" in p.text
    (r,) = [a for a in acts if isinstance(a, Report)]
    assert r.fields == {"text": "危" * WAYBILL_MAX_CHARS, "truncated": True, "chars": 5000}
