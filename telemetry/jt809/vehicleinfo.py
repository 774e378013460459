"""What a lower platform reports of a vehicle on its own initiative (pure), in 0x1200 UP_EXG_MSG:
0x1201 UP_EXG_MSG_REGISTER (the vehicle's terminal, registered), 0x120C
UP_EXG_MSG_REPORT_DRIVER_INFO (who drives it: 驾驶员身份信息) and 0x120D
UP_EXG_MSG_REPORT_EWAYBILL_INFO (what it carries: the electronic waybill, 电子运单). The upper
platform answers none of them.

Text is GBK (read as GB 18030, its superset), fixed-width fields padded with 0x00 and read up to
their first 0x00; text that is no GBK is refused (`BadBodyError`), never replaced. The layouts,
the DATA of the 0x1200 (after its vehicle, sub-type and DATA_LENGTH):

0x1201, 2011: PLATFORM_ID BYTE[11], PRODUCER_ID BYTE[11], TERMINAL_MODEL_TYPE BYTE[8],
TERMINAL_ID BYTE[7], TERMINAL_SIMCODE BYTE[12]: 49 bytes, the 2011 standard's widths ("不是 8 位
时以 \\0 终结"), as tucke/jtt809 and gratour's jt809core read it. SmallChi/JT809 reads and writes
the model in 20 bytes in 2011 (JT/T 808-2013's width; platforms in the field send it so: 61
bytes): both are read, told apart by DATA_LENGTH (`long_model`). 2019 (SmallChi/JT809):
PLATFORM_ID [11], PRODUCER_ID [11], TERMINAL_MODEL_TYPE [30], IMEI [15] (the terminal's
communication module, new in 2019), TERMINAL_ID [30], TERMINAL_SIMCODE [13]: 110 bytes.

0x120C (SmallChi/JT809): DRIVER_NAME [16], DRIVER_ID [20] (the identity card's number), LICENCE
[40] (从业资格证, the qualification certificate), ORG_NAME [200] (发证机构, who issued it): 276
bytes; 2019 adds the certificate's validity (证件有效期), UTC seconds in 8 bytes (284 bytes; 0: none
given).

0x120D, both versions (SmallChi/JT809): EWAYBILL_LENGTH DWORD, EWAYBILL_INFO BYTE[n]. The
standard leaves its content to the platform (a UN number, a name, a quantity, in whatever form):
kept as text, never parsed. Its length is in bytes; SmallChi writes the count of characters
instead (not the same for Chinese text), which is taken too when it is the count of the
characters that follow (the 0x1200's DATA_LENGTH bounds them); trailing 0x00 are padding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from telemetry.jt809.fields import BadBodyError, UnsupportedError, gbk, strict_text
from telemetry.jt809.ids import SubId
from telemetry.jt809.positions import ExgMsg

__all__ = [
    "DriverInfo",
    "Ewaybill",
    "Register",
    "VehicleReport",
    "decode_vehicle_report",
    "is_vehicle_report",
]

# (field, width) in their order; the model's width in 2011 is 8 (or 20: `long_model`)
_REG_2011 = (("platform_id", 11), ("producer_id", 11), ("model", 8), ("terminal_id", 7),
             ("sim", 12))  # fmt: skip
_REG_2019 = (("platform_id", 11), ("producer_id", 11), ("model", 30), ("imei", 15),
             ("terminal_id", 30), ("sim", 13))  # fmt: skip
_NAMES = {
    "platform_id": "PLATFORM_ID",
    "producer_id": "PRODUCER_ID",
    "model": "TERMINAL_MODEL_TYPE",
    "imei": "IMEI",
    "terminal_id": "TERMINAL_ID",
    "sim": "TERMINAL_SIMCODE",
    "name": "DRIVER_NAME",
    "id_number": "DRIVER_ID",
    "licence": "LICENCE",
    "org": "ORG_NAME",
}


def _layout(v2019: bool, long_model: bool) -> tuple[tuple[str, int], ...]:
    if v2019:
        return _REG_2019
    return tuple((f, 20 if f == "model" and long_model else w) for f, w in _REG_2011)


def _read(data: bytes, layout: tuple[tuple[str, int], ...], what: str) -> dict[str, str]:
    out, p = {}, 0
    for field, width in layout:
        out[field] = strict_text(data[p : p + width], f"{what} {_NAMES[field]}")
        p += width
    return out


def _write(values: dict[str, str], layout: tuple[tuple[str, int], ...]) -> bytes:
    return b"".join(gbk(values[f], w, _NAMES[f]) for f, w in layout)


@dataclass(frozen=True, slots=True)
class Register:
    """0x1201 上传车辆注册信息: the platform's id, the terminal's maker, model, id and SIM
    number, and (2019) its module's IMEI; `long_model`: a 2011 body with the 20-byte model."""

    sub_id: ClassVar[int] = SubId.REGISTER
    platform_id: str
    producer_id: str
    model: str
    terminal_id: str
    sim: str
    imei: str = ""  # 2019 only
    long_model: bool = False  # 2011 only

    def encode(self, v2019: bool = False) -> bytes:
        layout = _layout(v2019, self.long_model)
        return _write({f: getattr(self, f) for f, _ in layout}, layout)

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> Register:
        # 2011: 49 bytes (the model in 8), or 61 (in 20); 2019: 110
        sizes = {sum(w for _, w in _layout(v2019, long)): long for long in (True, False)}
        if len(data) not in sizes:
            want = " or ".join(str(n) for n in sorted(sizes))
            raise BadBodyError(f"0x1201: {len(data)} bytes, {want} expected")
        long_model = sizes[len(data)]
        got = _read(data, _layout(v2019, long_model), "0x1201")
        return cls(long_model=long_model, **got)


_DRIVER = (("name", 16), ("id_number", 20), ("licence", 40), ("org", 200))
_DRIVER_SIZE = sum(w for _, w in _DRIVER)
_TIME = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """0x120C 主动上报驾驶员身份信息: the driver's name, identity card number, qualification
    certificate (从业资格证) and its issuer; (2019) the certificate's validity, UTC seconds (0:
    none given)."""

    sub_id: ClassVar[int] = SubId.REPORT_DRIVER_INFO
    name: str
    id_number: str
    licence: str
    org: str
    valid_until_s: int = 0  # 2019 only

    def encode(self, v2019: bool = False) -> bytes:
        out = _write({f: getattr(self, f) for f, _ in _DRIVER}, _DRIVER)
        return out + (_TIME.pack(self.valid_until_s) if v2019 else b"")

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> DriverInfo:
        size = _DRIVER_SIZE + (_TIME.size if v2019 else 0)
        if len(data) != size:
            raise BadBodyError(f"0x120C: {len(data)} bytes, {size} expected")
        got = _read(data, _DRIVER, "0x120C")
        valid = _TIME.unpack_from(data, _DRIVER_SIZE)[0] if v2019 else 0
        return cls(valid_until_s=valid, **got)


_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Ewaybill:
    """0x120D 主动上报车辆电子运单信息: the waybill's text, as the platform wrote it."""

    sub_id: ClassVar[int] = SubId.REPORT_EWAYBILL_INFO
    text: str

    def encode(self, v2019: bool = False) -> bytes:
        raw = self.text.encode("gb18030")
        return _LENGTH.pack(len(raw)) + raw

    @classmethod
    def decode(cls, data: bytes, v2019: bool = False) -> Ewaybill:
        if len(data) < _LENGTH.size:
            raise BadBodyError(f"0x120D: {len(data)} bytes, 4 at least (EWAYBILL_LENGTH)")
        (n,) = _LENGTH.unpack_from(data)
        raw = data[_LENGTH.size :]
        if n != len(raw) and n != _chars(raw):  # (SmallChi/JT809 writes the characters)
            raise BadBodyError(f"0x120D: EWAYBILL_LENGTH {n}, {len(raw)} bytes follow")
        raw = raw.rstrip(b"\x00")
        if b"\x00" in raw:
            raise BadBodyError(f"0x120D: EWAYBILL_INFO has a 0x00 at byte {raw.index(0)}")
        return cls(strict_text(raw, "0x120D EWAYBILL_INFO"))


def _chars(raw: bytes) -> int:
    """How many characters `raw` is as GBK text (-1: it is none)."""
    try:
        return len(raw.decode("gb18030"))
    except UnicodeDecodeError:
        return -1


VehicleReport = Register | DriverInfo | Ewaybill
_REPORTS: dict[int, type[Register] | type[DriverInfo] | type[Ewaybill]] = {
    int(c.sub_id): c for c in (Register, DriverInfo, Ewaybill)
}


def decode_vehicle_report(exg: ExgMsg, v2019: bool) -> VehicleReport:
    """The 0x1201, 0x120C or 0x120D of a 0x1200; `UnsupportedError` for another sub-type."""
    cls = _REPORTS.get(exg.sub_id)
    if cls is None:
        raise UnsupportedError(f"UP_EXG_MSG sub-type {exg.sub_id:#06x} is no vehicle report")
    return cls.decode(exg.data, v2019)


def is_vehicle_report(sub_id: int) -> bool:
    """Whether a 0x1200's sub-type is one of these (0x1201, 0x120C, 0x120D)."""
    return sub_id in _REPORTS
