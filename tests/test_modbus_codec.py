"""The pure Modbus codec and client connection: recorded frames, round trips, stream splitting,
transaction-id matching, and random or mutated bytes that raise nothing but the codec's error."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.modbus.codec import (
    MAX_BITS,
    MAX_REGISTERS,
    Frame,
    crc16,
    decode_read_request,
    decode_read_response,
    encode_exception_response,
    encode_mbap,
    encode_mbap_read,
    encode_read_request,
    encode_read_response,
    encode_rtu,
    parse_mbap,
    parse_rtu,
)
from gateway.modbus.connection import Answer, ClientConnection
from gateway.modbus.errors import (
    CrcError,
    ExceptionResponseError,
    FrameError,
    ModbusError,
    RequestError,
)

ROOT = Path(__file__).resolve().parent.parent

# --- recorded frames (the Modbus application protocol and Modbus TCP specifications' examples)


def test_recorded_frames():
    # read holding registers 108-110 of unit 0x11, transaction 1 (MBAP example)
    assert encode_mbap_read(1, 0x11, 3, 107, 3) == bytes.fromhex("0001000000061103006b0003")
    # the answer: 555, 0, 100
    frame, used = parse_mbap(bytes.fromhex("0001000000091103060" + "22b00000064"))
    assert used == 15 and frame == Frame(1, 0x11, bytes.fromhex("0306022b00000064"))
    assert decode_read_response(0x11, 3, 3, frame.pdu) == bytes.fromhex("022b00000064")
    # RTU: unit 1 reads 10 holding registers from 0, CRC C5 CD
    assert encode_rtu(1, encode_read_request(3, 0, 10)) == bytes.fromhex("01030000000ac5cd")
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    # read coils 20-38 (19 bits): CD 6B 05 (spec example)
    bits = decode_read_response(1, 1, 19, bytes.fromhex("0103cd6b05"))
    assert bits == tuple(bool(int(c)) for c in "1011001111010110101")
    # an exception: illegal data address on read input registers
    with pytest.raises(ExceptionResponseError) as exc:
        decode_read_response(1, 4, 1, bytes.fromhex("8402"))
    assert exc.value.code == 2 and not exc.value.no_answer
    with pytest.raises(ExceptionResponseError) as gw:
        decode_read_response(1, 3, 1, bytes.fromhex("830b"))
    assert gw.value.no_answer  # gateway target device failed to respond


def test_requests_outside_the_protocol_are_ours_to_refuse():
    for function, address, count in [
        (3, 0, 0),
        (3, 0, MAX_REGISTERS + 1),
        (1, 0, MAX_BITS + 1),
        (4, 65535, 2),
        (5, 0, 1),
        (3, -1, 1),
    ]:
        with pytest.raises(RequestError):
            encode_read_request(function, address, count)
    with pytest.raises(RequestError):
        encode_mbap_read(70000, 1, 3, 0, 1)
    with pytest.raises(RequestError):
        encode_rtu(300, b"\x03")


# --- round trips

functions = st.sampled_from([1, 2, 3, 4])


@st.composite
def reads(draw):
    function = draw(functions)
    limit = MAX_BITS if function in (1, 2) else MAX_REGISTERS
    count = draw(st.integers(1, limit))
    address = draw(st.integers(0, 0x10000 - count))
    return function, address, count


@st.composite
def answers(draw):
    """A read and the data that answers it."""
    function, address, count = draw(reads())
    if function in (1, 2):
        # every tuple of bits, drawn as bytes: a list of up to 2,000 booleans took hypothesis
        # ~100 ms an example to draw (most of this file's time)
        packed = draw(st.binary(min_size=(count + 7) // 8, max_size=(count + 7) // 8))
        data = tuple(bool(packed[i // 8] >> (i % 8) & 1) for i in range(count))
    else:
        data = draw(st.binary(min_size=2 * count, max_size=2 * count))
    return function, address, count, data


@given(reads())
def test_read_request_round_trip(read):
    assert decode_read_request(encode_read_request(*read)) == read


@given(answers(), st.integers(0, 255))
def test_read_response_round_trip(case, unit):
    function, _, count, data = case
    assert decode_read_response(unit, function, count, encode_read_response(function, data)) == data


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(min_size=1, max_size=253))
def test_mbap_round_trip(tid, unit, pdu):
    frame = encode_mbap(tid, unit, pdu)
    assert parse_mbap(frame) == (Frame(tid, unit, pdu), len(frame))
    for cut in range(len(frame)):  # any prefix: "need more"
        assert parse_mbap(frame[:cut]) == (None, 0)


@given(answers(), st.integers(0, 255))
def test_rtu_round_trip(case, unit):
    function, _, _, data = case
    pdu = encode_read_response(function, data)
    frame = encode_rtu(unit, pdu)
    assert parse_rtu(frame) == (Frame(0, unit, pdu), len(frame))
    for cut in range(min(len(frame), 40)):
        assert parse_rtu(frame[:cut]) == (None, 0)


@given(st.integers(0, 0xFFFF), st.integers(0, 255), reads())
def test_one_pack_request_equals_the_layered_one(tid, unit, read):
    assert encode_mbap_read(tid, unit, *read) == encode_mbap(tid, unit, encode_read_request(*read))


# --- the client connection: matching, streams split anywhere


def serve(request: bytes, framing: str, data_for, *, exception: int | None = None) -> bytes:
    """A server's answer to one request frame (test side, built from the codec's pieces)."""
    if framing == "socket":
        frame, _ = parse_mbap(request)
    else:
        frame = Frame(0, request[0], request[1:-2])
    assert frame is not None
    function, address, count = decode_read_request(frame.pdu)
    if exception is not None:
        pdu = encode_exception_response(function, exception)
    else:
        pdu = encode_read_response(function, data_for(function, address, count))
    if framing == "socket":
        return encode_mbap(frame.tid, frame.unit, pdu)
    return encode_rtu(frame.unit, pdu)


def data_for(function: int, address: int, count: int) -> bytes | tuple[bool, ...]:
    if function in (1, 2):
        return tuple((address + i) % 3 == 0 for i in range(count))
    return b"".join(((address + i) & 0xFFFF).to_bytes(2, "big") for i in range(count))


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.integers(1, 247), reads()), min_size=1, max_size=8),
    st.data(),
)
def test_answers_out_of_order_in_any_chunks_match_their_requests(reqs, data):
    conn = ClientConnection("socket")
    sent = [(conn.read(unit, *read), read) for unit, read in reqs]
    replies = [serve(frame, "socket", data_for) for (_, frame), _ in sent]
    order = data.draw(st.permutations(range(len(replies))))
    stream = b"".join(replies[i] for i in order)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    got: list[Answer] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += conn.receive(stream[a:b])
    assert [a.rid for a in got] == [sent[i][0][0] for i in order]
    for answer in got:
        read = next(r for (rid, _), r in sent if rid == answer.rid)
        assert answer.value == data_for(*read)
    assert conn.outstanding == 0 and conn.dropped == 0


def test_a_late_answer_is_dropped_and_ids_skip_outstanding_ones():
    conn = ClientConnection("socket")
    late, frame = conn.read(1, 3, 0, 2)
    conn.forget(late)  # timed out
    rid, frame2 = conn.read(1, 3, 0, 2)
    assert rid != late
    assert conn.receive(serve(frame, "socket", data_for)) == []
    assert conn.dropped == 1
    [answer] = conn.receive(serve(frame2, "socket", data_for))
    assert answer.rid == rid
    # the counter wraps after 65536 requests, and skips the one still outstanding
    held, _ = conn.read(1, 3, 0, 1)
    for _ in range(0xFFFF):
        conn.forget(conn.read(1, 3, 0, 1)[0])
    assert conn.read(2, 3, 0, 1)[0] == (held + 1) & 0xFFFF


def test_an_answer_that_does_not_fit_its_request_fails_that_request_only():
    conn = ClientConnection("socket")
    wrong = [
        (5, encode_read_response(3, bytes(6))),  # 3 registers for 4
        (6, encode_read_response(3, bytes(8))),  # another unit
        (5, encode_read_response(4, bytes(8))),  # another function
    ]
    for unit, pdu in wrong:
        rid, frame = conn.read(5, 3, 0, 4)
        [answer] = conn.receive(encode_mbap(int.from_bytes(frame[:2], "big"), unit, pdu))
        assert isinstance(answer.value, FrameError) and answer.rid == rid
    assert conn.outstanding == 0
    rid, frame = conn.read(5, 3, 0, 4)
    [answer] = conn.receive(serve(frame, "socket", data_for, exception=2))
    assert isinstance(answer.value, ExceptionResponseError) and answer.value.code == 2


def test_rtu_one_request_at_a_time_and_stale_bytes_are_dropped():
    conn = ClientConnection("rtu")
    rid, frame = conn.read(7, 4, 10, 3)
    assert frame == encode_rtu(7, encode_read_request(4, 10, 3))
    with pytest.raises(RequestError):
        conn.read(7, 4, 10, 3)
    reply = serve(frame, "rtu", data_for)
    assert conn.receive(reply[:4]) == []
    [answer] = conn.receive(reply[4:])
    assert answer == Answer(rid, data_for(4, 10, 3))
    assert conn.receive(reply) == [] and conn.dropped == 1  # nothing outstanding
    rid, frame = conn.read(7, 1, 0, 9)
    [answer] = conn.receive(serve(frame, "rtu", data_for, exception=11))
    assert isinstance(answer.value, ExceptionResponseError) and answer.value.no_answer


def test_rtu_a_garbled_answer_fails_its_request_and_the_line_must_fall_quiet():
    """Noise on the serial line behind a device server: the request fails with the CRC error,
    the rest of the frame is dropped, and no request goes until the shell says the line was
    quiet (`settled`); then the link goes on."""
    conn = ClientConnection("rtu")
    rid, frame = conn.read(7, 3, 0, 2)
    bad = bytearray(serve(frame, "rtu", data_for))
    bad[-1] ^= 0xFF
    [answer] = conn.receive(bytes(bad[:-2]) + bytes(bad[-2:]) + b"\x07\x03")
    assert answer.rid == rid and isinstance(answer.value, CrcError)
    assert conn.resync and conn.outstanding == 0
    assert conn.receive(b"\x04\x00\x00") == [] and conn.dropped == 0  # the rest of it
    with pytest.raises(RequestError, match="quiet"):
        conn.read(7, 3, 0, 2)
    conn.settled()
    rid, frame = conn.read(7, 3, 0, 2)
    [answer] = conn.receive(serve(frame, "rtu", data_for))
    assert answer == Answer(rid, data_for(3, 0, 2))
    # a function no read answers is noise too: the request fails, the link goes on
    rid, frame = conn.read(7, 3, 0, 2)
    [answer] = conn.receive(bytes.fromhex("0710040000"))
    assert answer.rid == rid and isinstance(answer.value, FrameError) and conn.resync
    # Modbus TCP: bytes that are no frame are the stream's, which cannot be trusted any more
    tcp = ClientConnection("socket")
    tcp.read(7, 3, 0, 2)
    with pytest.raises(FrameError):
        tcp.receive(bytes.fromhex("0000000700050103020000"))


def test_a_stream_that_lost_its_framing_raises():
    conn = ClientConnection("socket")
    conn.read(1, 3, 0, 1)
    with pytest.raises(FrameError):
        conn.receive(bytes.fromhex("0000000100050103020000"))  # protocol id 1
    with pytest.raises(FrameError):
        conn.receive(bytes.fromhex("00000000ffff01"))  # length 65535


# --- random and mutated bytes: the codec's own error or a result, nothing else


def guarded(call, *args):
    try:
        return call(*args)
    except ModbusError:
        return None


@settings(max_examples=500)
@given(st.binary(max_size=300), st.integers(0, 255), functions, st.integers(1, 2000))
def test_random_bytes_raise_only_the_codecs_error(data, unit, function, count):
    guarded(parse_mbap, data)
    guarded(parse_rtu, data)
    guarded(decode_read_request, data)
    guarded(decode_read_response, unit, function, count, data)
    for framing in ("socket", "rtu"):
        conn = ClientConnection(framing)
        conn.read(unit, function, 0, min(count, 125))
        answers = guarded(conn.receive, data) or []
        for answer in answers:
            assert isinstance(answer.value, (bytes, tuple, ModbusError))


@st.composite
def mutated(draw):
    """A valid answer with bytes flipped, cut off, or added."""
    framing = draw(st.sampled_from(["socket", "rtu"]))
    function, address, count, data = draw(answers())
    unit = draw(st.integers(0, 255))
    pdu = encode_read_response(function, data)
    frame = bytearray(encode_mbap(3, unit, pdu) if framing == "socket" else encode_rtu(unit, pdu))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "add"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= draw(st.integers(1, 255))
        elif op == "cut" and frame:
            del frame[draw(st.integers(0, len(frame) - 1)) :]
        else:
            frame += draw(st.binary(min_size=1, max_size=8))
    return framing, unit, (function, address, count), bytes(frame)


@settings(max_examples=500)
@given(mutated())
def test_mutated_frames_raise_only_the_codecs_error(case):
    framing, unit, read, frame = case
    conn = ClientConnection(framing)
    conn.read(unit, *read)
    for answer in guarded(conn.receive, frame) or []:
        assert isinstance(answer.value, (bytes, tuple, ModbusError))
        if not isinstance(answer.value, ModbusError):  # what passes is well formed
            want = read[2] if read[0] in (1, 2) else 2 * read[2]
            assert len(answer.value) == want


def test_the_codec_is_pure():
    """No sockets, no event loop, no clocks in the codec and the client connection."""
    for name in ("codec.py", "connection.py", "errors.py"):
        tree = ast.parse((ROOT / "gateway" / "modbus" / name).read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & {"asyncio", "socket", "time", "selectors", "pymodbus"}, name
