"""The additional items of a 0x0200 (id BYTE, length BYTE, value), fuzzed: over the decoder and
the session (hypothesis), and over a real TCP connection to a running gateway and a real
Mosquitto. A malformed item (its header cut short, its length past the end of the body) loses
itself and the items after it, counted `bad_extra` with the reason, never the position: the 28
bytes of the basic block are whole, and the items are not part of the position record. Items of
any id and length that frame well (mileage 0x01, extended signals 0x25, IO 0x2A, signal 0x30,
satellites 0x31, the ADAS 0x64 and DSM 0x65 blocks of 苏标 terminals, vendors' own) are kept as
sent; one of a known id with an unexpected length (a 3-byte mileage) is left out of
`extra_values()` and counted nowhere, since nothing is published from it. (The ADAS and DSM
blocks are read besides, `tests/test_jt808_safety.py`: one that does not read is counted
`bad_safety`, never the position.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jt808_helpers import (
    ONE_TANKER,
    PHONE,
    RawTerminal,
    authed,
    fix,
    frame,
    frames_of,
    make_gateway,
    positions,
    registry_of,
    running,
    stamps,
    until,
)

from gateway.jt808.records import position_record
from gateway.jt808.session import Problem, Publish
from simulators.jt808 import Jt808Terminal, location_of
from telemetry.jt808 import BatchLocation, Header, Location, MsgId, PlatformResponse, encode_frame
from telemetry.jt808.codec import Jt808Error
from telemetry.registry import Registry

KNOWN = (0x01, 0x02, 0x03, 0x04, 0x25, 0x2A, 0x2B, 0x30, 0x31, 0x64, 0x65, 0x66, 0x67)
BASIC = location_of(fix(0)).encode(False)[:28]

items = st.lists(
    st.tuples(st.one_of(st.sampled_from(KNOWN), st.integers(0, 255)), st.binary(max_size=60)),
    max_size=12,
)
# what a broken tail looks like: an id alone, or an item whose length runs past the body
broken = st.one_of(
    st.integers(0, 255).map(lambda i: bytes((i,))),
    st.tuples(st.integers(0, 255), st.integers(1, 255), st.binary(max_size=40))
    .filter(lambda t: t[1] > len(t[2]))
    .map(lambda t: bytes((t[0], t[1])) + t[2]),
)


def with_items(extras: list[tuple[int, bytes]]) -> bytes:
    return BASIC + b"".join(bytes((i, len(v))) + v for i, v in extras)


@settings(max_examples=300, deadline=None)
@given(items, st.one_of(st.none(), broken), st.booleans())
def test_a_broken_item_loses_itself_and_what_follows_never_the_position(
    extras: list[tuple[int, bytes]], tail: bytes | None, v2019: bool
) -> None:
    body = with_items(extras) + (tail or b"")
    loc = Location.decode(body, v2019)
    assert list(loc.extras) == extras
    assert bool(loc.bad_extras) == (tail is not None)
    if tail is None:
        assert loc.encode(v2019) == body  # kept as sent
    # the record is the basic block's alone, whatever the items
    assert position_record(loc, v2019) == position_record(Location.decode(BASIC), v2019)
    values = loc.extra_values()  # never raises; known ids of the expected length only
    assert all(isinstance(v, float | int) for v in values.values())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_after_the_basic_block_decode_or_say_why(tail: bytes) -> None:
    loc = Location.decode(BASIC + tail)
    consumed = sum(2 + len(v) for _, v in loc.extras)
    assert (consumed == len(tail)) == (not loc.bad_extras)
    assert position_record(loc) == position_record(Location.decode(BASIC))


@settings(max_examples=100, deadline=None)
@given(items, broken, st.integers(0, 0xFFFF))
def test_the_session_publishes_the_position_and_counts_the_broken_item(
    extras: list[tuple[int, bytes]], tail: bytes, serial: int
) -> None:
    s = authed(PHONE)
    body = with_items(extras) + tail
    if len(body) > 1023:
        return
    ev = s.feed(encode_frame(Header(MsgId.LOCATION, serial, PHONE), body), 0)
    (pub,) = [e for e in ev if isinstance(e, Publish)]
    assert pub.records[0]["ts"] == fix(0).ts_ms
    (bad,) = [e for e in ev if isinstance(e, Problem) and e.kind == "bad_extra"]
    assert "additional item" in bad.detail
    assert frames_of(ev) == [PlatformResponse(serial, MsgId.LOCATION, 0)]
    # the same item in a 0x0704: each item's position kept, each broken one counted
    batch = with_items(extras) + tail
    upload = BatchLocation(1, (Location.decode(BASIC),)).encode()[:3] + len(batch).to_bytes(
        2, "big"
    )
    if len(upload) + len(batch) <= 1023:
        ev = s.feed(encode_frame(Header(0x0704, serial ^ 1, PHONE), upload + batch), 0)
        assert [len(e.records) for e in ev if isinstance(e, Publish)] == [1]
        kinds = [e.kind for e in ev if isinstance(e, Problem)]
        assert [k for k in kinds if k not in ("bad_safety", "active_safety")] == ["bad_extra"]


def test_a_body_shorter_than_the_basic_block_is_a_clear_error() -> None:
    with pytest.raises(Jt808Error, match="at least 28"):
        Location.decode(BASIC[:27])


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, ONE_TANKER)


async def test_broken_items_over_a_socket_keep_their_positions(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    adas = bytes(range(47))  # a 苏标 0x64 block, its content not read
    bodies = [
        # mileage, signal, satellites, then an ADAS block whose length runs past the body
        location_of(fix(0)).encode(False)[:28]
        + bytes.fromhex("0104000030393001173103")
        + bytes((0x64, 60))
        + adas,
        # the last item's header cut short
        location_of(fix(1)).encode(False)[:28] + bytes.fromhex("2a020001") + b"\x25",
        # well framed, of unexpected lengths (a 3-byte mileage, an empty IO word): kept
        location_of(fix(2)).encode(False)[:28]
        + bytes.fromhex("01030030392a00")
        + b"\x65\x2f"
        + adas,
    ]
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool")
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        async with Jt808Terminal(host, port, PHONE, "苏A·D1234") as t:
            await t.login()
        assert t.auth_code is not None
        raw = RawTerminal()
        await raw.open(host, port, t.auth_code)
        for n, body in enumerate(bodies):
            await raw.send(frame(MsgId.LOCATION, 20 + n, body), 1)
        await raw.close()
        assert [(a.ack_serial, a.result) for a in raw.answers[1:]] == [
            (20, 0),
            (21, 0),
            (22, 0),
        ]
        await until(lambda: len([r for _, rs in got for r in rs]) == 3)
        assert stamps(got) == [fix(i).ts_ms for i in range(3)]
        assert gw.server.counters["bad_extra"] == 2
        assert gw.server.counters["bad_safety"] == 1  # the DSM block's time is no time
        assert gw.server.counters["positions"] == 3
