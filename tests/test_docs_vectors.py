"""The test vectors printed in the docs, read from the docs themselves and checked against the
code: the telemetry batch and the position JSON of docs/mqtt.md, the JT/T 808 location report
and the auth code of docs/jt808.md. A vector is found by its marker comment
(`<!-- test vector: NAME`), then the next fenced block; its byte-by-byte table is the next
table. If one of these fails, the docs and the code disagree: fix whichever is wrong."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from gateway.jt808.bindings import Bindings
from gateway.jt808.directory import Directory
from gateway.jt808.session import Publish, Send, Session, State, position_record
from hazardhub.settings import load_registry
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from telemetry.codec import MAX_KEYS, MAX_READINGS, TelemetryBatch, decode, encode
from telemetry.jt808 import (
    BatchLocation,
    DriverIdentity,
    Header,
    Location,
    MsgId,
    PlatformResponse,
    Register,
    RegisterResponse,
    decode_body,
    decode_frame,
    encode_frame,
)
from telemetry.jt808.codec import checksum, unescape
from telemetry.posenvelope import decode_envelope
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
L = TopicLayout()


def _doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _after_marker(doc: str, name: str) -> str:
    marker = f"<!-- test vector: {name} "
    assert doc.count(marker) == 1, f"marker {marker!r} must be in the doc once"
    return doc[doc.index(marker) :]


def _block(doc: str, name: str) -> str:
    """The fenced block right after the marker."""
    found = re.search(r"```[a-z]*\n(.*?)\n```", _after_marker(doc, name), re.S)
    assert found is not None, f"no fenced block after marker {name!r}"
    return found.group(1)


def _hex(doc: str, name: str) -> bytes:
    return bytes.fromhex(_block(doc, name))


def _byte_table(doc: str, name: str) -> list[tuple[int, bytes]]:
    """(offset, bytes) of each row of the first table after the marker's block."""
    rest = _after_marker(doc, name)
    lines = rest[rest.index("```", rest.index("```") + 3) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    rows = [re.match(r"\| (\d+) \| `([0-9a-f ]+)` \|", line) for line in lines[start:end]]
    found = [(int(m.group(1)), bytes.fromhex(m.group(2))) for m in rows if m is not None]
    assert found, f"no byte table after vector {name!r}"
    return found


def _check_table(raw: bytes, table: list[tuple[int, bytes]]) -> None:
    """Each row's bytes are the vector's at its offset, and the rows cover it end to end."""
    at = 0
    for offset, part in table:
        assert offset == at, f"row at {offset} follows bytes up to {at}"
        assert raw[offset : offset + len(part)] == part, f"row at offset {offset}"
        at = offset + len(part)
    assert at == len(raw)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(ROOT / "examples" / "demo.yaml", [ROOT / "profiles"])


# --- telemetry (docs/mqtt.md) ---

TELEMETRY = TelemetryBatch(
    gateway="gw1",
    device="kj-sub-3",
    epoch=1795932000000,
    seq=7,
    keys=("ch4_t1", "feed"),
    key=np.array([0, 1], dtype=np.uint16),
    ts=np.array([1795932604315, 1795932604318], dtype=np.int64),
    value=np.array([1.5, 1.0]),
    quality=np.array([0, 0], dtype=np.uint8),
)
TELEMETRY_TOPIC = L.telemetry("north-coal", "face-1301", "kj-sub-3")


def test_telemetry_vector_decodes_to_the_documented_batch() -> None:
    raw = _hex(_doc("mqtt.md"), "telemetry")
    assert decode(raw).same_as(TELEMETRY)
    assert encode(TELEMETRY) == raw
    _check_table(raw, _byte_table(_doc("mqtt.md"), "telemetry"))


def test_telemetry_size_and_limits_as_documented() -> None:
    doc = _doc("mqtt.md")
    raw = _hex(doc, "telemetry")
    b = TELEMETRY
    size = 20 + 1 + len(b.gateway) + 1 + len(b.device) + 2 + sum(1 + len(k) for k in b.keys)
    assert size + 4 + 19 * len(b) == len(raw)
    assert (MAX_KEYS, MAX_READINGS) == (4096, 1_000_000)
    largest = 20 + 2 * 256 + 2 + MAX_KEYS * 256 + 4 + 19 * MAX_READINGS
    assert f"{largest:,}" in doc


def test_telemetry_vector_is_taken_by_the_hub(registry: Registry) -> None:
    raw = _hex(_doc("mqtt.md"), "telemetry")
    handled = Pipeline(registry, L, Metrics()).handle(TELEMETRY_TOPIC, raw, 1795932604400)
    assert handled.kind == "telemetry" and not handled.reasons and handled.readings is not None
    ids = [registry.sensors[int(i)].id for i in handled.readings.sensor]
    assert ids == ["face1301-ch4-t1", "face1301-feed"]
    assert handled.readings.value.tolist() == [1.5, 1.0]
    assert handled.readings.quality.tolist() == [0, 0]


def test_keys_are_point_names_and_gateway_is_not_checked(registry: Registry) -> None:
    pipeline = Pipeline(registry, L, Metrics())
    # a sensor id as the key: that reading is dropped with the documented reason
    by_id = replace(TELEMETRY, keys=("face1301-ch4-t1", "feed"))
    handled = pipeline.handle(TELEMETRY_TOPIC, encode(by_id), 1795932604400)
    assert handled.reasons == [
        "unknown_sensor: 1 reading(s) name sensor keys not configured: ['face1301-ch4-t1']"
    ]
    assert handled.readings is not None and len(handled.readings.sensor) == 1
    # any gateway name is taken
    other = replace(TELEMETRY, gateway="not-configured", seq=8)
    handled = pipeline.handle(TELEMETRY_TOPIC, encode(other), 1795932604400)
    assert not handled.reasons and handled.readings is not None
    assert len(handled.readings.sensor) == 2


# --- position JSON (docs/mqtt.md) ---


def test_position_example_gives_the_documented_result(registry: Registry) -> None:
    payload = _block(_doc("mqtt.md"), "position").encode()
    topic = L.position("acme-chem", "tanker-01")
    handled = Pipeline(registry, L, Metrics()).handle(topic, payload, 1795961101000)
    assert handled.kind == "position" and not handled.reasons
    pos, rd = handled.positions, handled.readings
    assert pos is not None and rd is not None
    assert pos.ts.tolist() == [1795961100000]
    assert (pos.lat.tolist(), pos.lon.tolist()) == ([31.6201], [120.3301])
    assert pos.heading_deg.tolist() == [67.0]
    assert pos.alarm_flags is not None and pos.alarm_flags.tolist() == [0]
    assert pos.driver_names is not None and list(pos.driver_names.values()) == ["D0012"]
    assert [registry.sensors[int(i)].id for i in rd.sensor] == ["tanker-01.speed"]
    assert (rd.ts.tolist(), rd.value.tolist(), rd.quality.tolist()) == (
        [1795961100000],
        [88.5],
        [0],
    )
    assert (rd.epoch.tolist(), rd.seq.tolist()) == ([0], [1203])


def test_position_envelope_example_gives_the_documented_result(registry: Registry) -> None:
    payload = _block(_doc("mqtt.md"), "position-envelope").encode()
    assert decode_envelope(payload).epoch == 1795960800000  # the codec's reading too
    topic = L.position("acme-chem", "tanker-01")
    pipeline = Pipeline(registry, L, Metrics())
    handled = pipeline.handle(topic, payload, 1795961101000)
    assert handled.kind == "position" and not handled.reasons and not handled.duplicate
    assert handled.mark == (("acme-chem", "vehicles", "tanker-01"), 1795960800000, 42)
    pos, rd = handled.positions, handled.readings
    assert pos is not None and rd is not None
    assert pos.ts.tolist() == [1795961100000]
    assert (pos.lat.tolist(), pos.lon.tolist()) == ([31.6201], [120.3301])
    assert [registry.sensors[int(i)].id for i in rd.sensor] == ["tanker-01.speed"]
    assert rd.value.tolist() == [88.5]
    # its one record is the position example's, bare
    example = orjson.loads(_block(_doc("mqtt.md"), "position"))
    (record,) = decode_envelope(payload).records
    assert record == {k: example[k] for k in record}
    # judged (a flush marks it), the same again is a duplicate
    pipeline.seen.add(handled.mark)
    assert pipeline.handle(topic, payload, 1795961102000).duplicate


# --- JT/T 808 (docs/jt808.md) ---


def test_jt808_location_vector_decodes() -> None:
    doc = _doc("jt808.md")
    raw = _hex(doc, "jt808-0200")
    frame = decode_frame(raw)
    assert frame.header == Header(MsgId.LOCATION, 126, "013800000001")  # 2013: version None
    assert raw[1:5] == bytes.fromhex("0200 0022")  # body properties: bit 14 clear, 34 bytes
    data = unescape(raw[1:-1])
    assert b"\x7d\x02" in raw and data[10:12] == b"\x00\x7e"  # the serial, escaped
    assert data[-1] == checksum(data[:-1]) == 0xBA
    loc = decode_body(frame.header.msg_id, frame.body, frame.header.is_2019)
    assert loc == Location(
        alarm=0,
        status=3,
        lat_e6=31620100,
        lon_e6=120330100,
        altitude_m=12,
        speed_dkmh=885,
        direction=67,
        time="261129220500",
        extras=((0x01, (12345).to_bytes(4, "big")),),
    )
    assert isinstance(loc, Location) and loc.extra_values() == {"mileage_km": 1234.5}
    assert position_record(loc, v2019=False) == orjson.loads(_block(doc, "jt808-record"))
    _check_table(raw, _byte_table(doc, "jt808-0200"))


def test_jt808_record_is_the_position_example() -> None:
    record = orjson.loads(_block(_doc("jt808.md"), "jt808-record"))
    example = orjson.loads(_block(_doc("mqtt.md"), "position"))
    assert {k: v for k, v in example.items() if k not in ("driver_id", "seq")} == record


@pytest.mark.parametrize("v2019", [False, True])
def test_jt808_session_registers_authenticates_and_publishes_the_vector(
    registry: Registry, v2019: bool
) -> None:
    doc = _doc("jt808.md")
    form = re.search(r"^hh2:[A-Za-z0-9_-]{32}$", doc, re.M)  # the documented form of a code
    assert form is not None
    bindings = Bindings()
    session = Session(Directory(registry.vehicles.values()), bindings)
    version = 1 if v2019 else None
    register = Register(32, 100, "HHSIM", "M1", "T0001", 2, "苏AD1234")
    body = register.encode(v2019)
    assert body.endswith(bytes.fromhex("02 cb d5 41 44 31 32 33 34"))  # colour, GBK plate
    assert len(body) == (76 if v2019 else 37) + 8
    sent = session.feed(encode_frame(Header(MsgId.REGISTER, 1, "13800000001", version), body), 0)
    answer = decode_frame(next(e for e in sent if isinstance(e, Send)).data)
    assert answer.header.version == version
    reply = decode_body(answer.header.msg_id, answer.body, v2019)
    assert isinstance(reply, RegisterResponse) and reply.result == RegisterResponse.OK
    assert reply.ack_serial == 1 and re.fullmatch(r"hh2:[A-Za-z0-9_-]{32}", reply.auth_code)
    # a later connection
    session = Session(Directory(registry.vehicles.values()), bindings)
    auth = Header(MsgId.AUTHENTICATE, 2, "13800000001")
    session.feed(encode_frame(auth, reply.auth_code.encode()), 0)
    assert session.state is State.AUTHENTICATED
    events = session.feed(_hex(doc, "jt808-0200"), 1795961101000)
    published = [e for e in events if isinstance(e, Publish)]
    assert [p.records for p in published] == [(orjson.loads(_block(doc, "jt808-record")),)]
    acks = [decode_frame(e.data) for e in events if isinstance(e, Send)]
    assert [decode_body(a.header.msg_id, a.body, False) for a in acks] == [
        PlatformResponse(126, MsgId.LOCATION, PlatformResponse.OK)
    ]


def _session(registry: Registry) -> Session:
    """A session of tanker-01's terminal (13800000001), registered and authenticated."""
    session = Session(Directory(registry.vehicles.values()), Bindings())
    register = Register(32, 100, "HHSIM", "M1", "T0001", 2, "苏AD1234").encode(False)
    sent = session.feed(encode_frame(Header(MsgId.REGISTER, 1, "13800000001"), register), 0)
    answer = decode_frame(next(e for e in sent if isinstance(e, Send)).data)
    reply = decode_body(answer.header.msg_id, answer.body, False)
    assert isinstance(reply, RegisterResponse) and reply.result == RegisterResponse.OK
    auth = Header(MsgId.AUTHENTICATE, 2, "13800000001")
    session.feed(encode_frame(auth, reply.auth_code.encode()), 0)
    assert session.state is State.AUTHENTICATED
    return session


def test_jt808_batch_vector_decodes_and_is_published_in_order(registry: Registry) -> None:
    doc = _doc("jt808.md")
    raw = _hex(doc, "jt808-0704")
    frame = decode_frame(raw)
    assert frame.header == Header(MsgId.BATCH_LOCATION, 127, "013800000001")
    assert raw[3:5] == bytes.fromhex("0045") and len(frame.body) == 69
    assert unescape(raw[1:-1])[-1] == checksum(unescape(raw[1:-1])[:-1]) == 0x0B
    first = Location(0, 3, 31620100, 120330100, 12, 880, 67, "261129220400")
    mileage = ((0x01, (12345).to_bytes(4, "big")),)
    second = Location(0, 3, 31626200, 120345100, 12, 885, 67, "261129220430", mileage)
    batch = decode_body(frame.header.msg_id, frame.body, False)
    assert batch == BatchLocation(BatchLocation.BACKFILL, (first, second))
    assert frame.body[:3] == bytes.fromhex("0002 01")  # the count (WORD), the type (BYTE)
    # each item: its length (WORD), then exactly a 0x0200 body
    assert frame.body[3:5] == (28).to_bytes(2, "big") and frame.body[5:33] == first.encode()
    assert frame.body[33:35] == (34).to_bytes(2, "big") and frame.body[35:] == second.encode()
    _check_table(raw, _byte_table(doc, "jt808-0704"))
    events = _session(registry).feed(raw, 1795961101000)
    (published,) = [e for e in events if isinstance(e, Publish)]
    assert [r["ts"] for r in published.records] == [1795961040000, 1795961070000]
    assert "1795961040000 and 1795961070000" in doc
    acks = [decode_frame(e.data) for e in events if isinstance(e, Send)]
    assert [decode_body(a.header.msg_id, a.body, False) for a in acks] == [
        PlatformResponse(127, MsgId.BATCH_LOCATION, PlatformResponse.OK)
    ]
    # a count that the body does not hold is the whole message's error: answered 2, none taken
    short = replace(frame.header, serial=128)
    events = _session(registry).feed(encode_frame(short, b"\x00\x03" + frame.body[2:]), 0)
    assert not [e for e in events if isinstance(e, Publish)]
    acks = [decode_frame(e.data) for e in events if isinstance(e, Send)]
    assert [decode_body(a.header.msg_id, a.body, False) for a in acks] == [
        PlatformResponse(128, MsgId.BATCH_LOCATION, PlatformResponse.MESSAGE_ERROR)
    ]


def test_jt808_batch_sizes_as_documented() -> None:
    """1023 bytes of body: 34 items of the basic block, 24 with mileage, signal, satellites."""
    doc = _doc("jt808.md")
    plain = Location(0, 3, 31620100, 120330100, 12, 880, 67, "261129220400")
    usual = replace(plain, extras=((0x01, bytes(4)), (0x30, bytes(1)), (0x31, bytes(1))))
    for item, fits in ((plain, 34), (usual, 24)):
        size = len(BatchLocation(1, (item,) * fits).encode())
        assert size <= 1023 < len(BatchLocation(1, (item,) * (fits + 1)).encode())
        assert f"3 + {fits} x {len(item.encode()) + 2} = {size}" in doc
    assert "about 25 positions per 0x0704" in doc


def test_jt808_driver_identity_vector_decodes() -> None:
    doc = _doc("jt808.md")
    raw = _hex(doc, "jt808-0702")
    card = decode_body(MsgId.DRIVER_IDENTITY, raw, False)
    assert card == DriverIdentity(
        DriverIdentity.IN,
        "261129220000",
        0,
        "张三",
        "320100198001011234",
        "江苏省交通运输厅",
        "20300101",
    )
    assert isinstance(card, DriverIdentity) and card.driver_id == "320100198001011234"
    assert card.encode(False) == raw
    # 2019 adds the ID card number, STRING[20]
    v2019 = raw + b"32010019800101123X" + bytes(2)
    assert decode_body(MsgId.DRIVER_IDENTITY, v2019, True) == replace(
        card, id_card="32010019800101123X"
    )
    # a card out: the status and the time, nothing more
    out = decode_body(MsgId.DRIVER_IDENTITY, bytes.fromhex("02 26 11 29 23 00 00"), False)
    assert out == DriverIdentity(DriverIdentity.OUT, "261129230000")
    _check_table(raw, _byte_table(doc, "jt808-0702"))
