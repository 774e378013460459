"""Sub-packaged messages (header bit 13) over a real TCP connection to a running gateway and a
real Mosquitto: a sub-package lost is asked for again (0x8003) and the message is published
once it comes, with its first serial or a new one; a sub-package sent twice, the last one after
the message was whole most often, is answered and not kept. Before, the gateway never asked
(a lost sub-package lost the whole message a minute later, counted `incomplete_packets`), a
missing sub-package sent again with a new serial opened a group of its own that never closed,
and so did a copy of the last sub-package once the message was whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jt808_helpers import (
    ONE_TANKER,
    PHONE,
    RawTerminal,
    fix,
    make_gateway,
    positions,
    registry_of,
    running,
    stamps,
    until,
)

from gateway.jt808 import PacketPolicy
from gateway.jt808.packets import Packets, resend_body
from simulators.jt808 import Jt808Terminal, location_of
from telemetry.jt808 import (
    BatchLocation,
    Frame,
    Header,
    MsgId,
    decode_frame,
    encode_frame,
    encode_packets,
)
from telemetry.registry import Registry

FAST = PacketPolicy(ask_after_ms=300, max_asks=3, max_age_ms=3_500)  # (ticks 1 s apart)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, ONE_TANKER)


def batch(start: int, n: int = 40) -> bytes:
    """A blind-area upload of `n` positions from fix(start) on, 1,000 bytes and more."""
    items = tuple(location_of(fix(start + i)) for i in range(n))
    return BatchLocation(BatchLocation.BACKFILL, items).encode(False)


def packets(serial: int, body: bytes) -> list[bytes]:
    frames = encode_packets(Header(MsgId.BATCH_LOCATION, serial, PHONE), body, 500)
    assert len(frames) == 3
    return frames


def resent(frame: bytes, serial: int) -> bytes:
    """The same sub-package (index, total, body) under another serial number."""
    f = decode_frame(frame)
    h = f.header
    return encode_frame(Header(h.msg_id, serial, h.phone, packet=h.packet), f.body)


async def test_lost_sub_packages_are_asked_for_and_copies_are_not_kept(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool", packets=FAST)
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        async with Jt808Terminal(host, port, PHONE, "苏A·D1234") as t:
            await t.login()
        assert t.auth_code is not None
        raw = RawTerminal()
        await raw.open(host, port, t.auth_code)
        counters = gw.server.counters

        # (a) the second sub-package lost: asked for; (b) sent again with a new serial
        a = packets(40, batch(0))
        await raw.write(a[0] + a[2])
        await until(lambda: raw.asks == [(40, [2])])
        await raw.write(resent(a[1], 43))
        await until(lambda: (43, 0) in raw.acks)
        await until(lambda: stamps(got) == [fix(i).ts_ms for i in range(40)])
        assert raw.acks[1:] == [(40, 0), (42, 0), (43, 0)]
        assert counters["packet_resent"] == 1

        # the same, sent again with its own serial (JT/T 808's retransmission)
        b = packets(50, batch(40))
        await raw.write(b[1] + b[2])
        await until(lambda: (50, [1]) in raw.asks)
        await raw.write(b[0])
        await until(lambda: stamps(got) == [fix(i).ts_ms for i in range(80)])

        # (c) a sub-package twice while the message is open, and the last one again
        # once it was whole (its answer lost): answered, not kept, published once
        c = packets(60, batch(80))
        await raw.write(c[0] + c[0] + c[1] + c[2])
        await until(lambda: stamps(got) == [fix(i).ts_ms for i in range(120)])
        await raw.write(c[2])
        await until(lambda: raw.acks.count((62, 0)) == 2)
        assert raw.acks[-5:] == [(60, 0), (60, 0), (61, 0), (62, 0), (62, 0)]
        assert counters["packet_repeated"] == 2
        assert [c.session.packets_pending for c in gw.server.connections] == [0]

        # nothing left open: nothing dropped once the age limit passed, nothing more asked
        asks = len(raw.asks)
        await asyncio.sleep(FAST.max_age_ms / 1000 + 1.2)
        assert counters["incomplete_packets"] == 0
        assert len(raw.asks) == asks
        assert stamps(got) == [fix(i).ts_ms for i in range(120)]  # each once

        # a sub-package that never comes: asked for 3 times, then the message is dropped
        d = packets(70, batch(120))
        await raw.write(d[0] + d[1])
        await until(lambda: counters["incomplete_packets"] == 1, FAST.max_age_ms / 1000 + 3)
        assert raw.asks[asks:] == [(70, [3])] * FAST.max_asks
        await raw.close()


def test_the_request_body_counts_in_a_byte_in_2013_and_a_word_in_2019() -> None:
    assert resend_body(0x1234, (2, 5), False).hex() == "1234" + "02" + "0002" + "0005"
    assert resend_body(0x1234, (2, 5), True).hex() == "1234" + "0002" + "0002" + "0005"


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=601, max_size=3000),  # two sub-packages at least
    st.integers(50, 600),
    st.randoms(use_true_random=False),
    st.integers(0, 0xFFFF),
)
def test_any_order_with_copies_and_losses_asked_for_gives_the_message_once(
    body: bytes, size: int, rnd: object, serial: int
) -> None:
    """Sub-packages in any order, some twice, some lost and sent again after the request with
    new serials: the message comes out once, whole, and nothing stays open."""
    import random

    assert isinstance(rnd, random.Random)
    frames = [decode_frame(f) for f in encode_packets(Header(0x0704, serial, PHONE), body, size)]
    sent = [f for f in frames if rnd.random() < 0.7] + [f for f in frames if rnd.random() < 0.2]
    sent = sent or [frames[-1]]  # (a message none of whose sub-packages came is unknown)
    rnd.shuffle(sent)
    p = Packets(PacketPolicy(ask_after_ms=10, max_age_ms=1000))
    wholes = [w for w in (p.add(f, 0).whole for f in sent) if w is not None]
    if p.pending:
        (asks,), dropped = p.tick(10)
        assert dropped == []
        new = serial + len(frames)
        for index in asks.indexes:
            f = frames[index - 1]
            again = Frame(
                Header(0x0704, (new + index) & 0xFFFF, PHONE, packet=f.header.packet), f.body
            )
            wholes += [w for w in [p.add(again, 20).whole] if w is not None]
    assert [w.body for w in wholes] == [body]
    assert p.pending == 0
