"""Bit 14 of the body properties and the 2019 header's protocol version byte, over real TCP: a
2019 header whose version is not 1 is no frame we can read (counted `bad_version`, unanswered,
the connection goes on), but one garbled on the line is a bad frame (its check code is checked
first); a 2013 terminal that sets bit 14 (reserved in 2013) is told by its frame's length and
answered in a 2013 header."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jt808_helpers import make_gateway, running

from telemetry.jt808 import (
    FrameReader,
    Header,
    MsgId,
    Register,
    RegisterResponse,
    decode_body,
    encode_frame,
)
from telemetry.jt808.codec import checksum, escape, unescape

from e2e_helpers import tanker_registry
from services import MosquittoService

REGISTER = Register(44, 300, "HZHUB", "SIM-808", "0000001", 2, "苏AD1234")


def with_bit_14(frame: bytes) -> bytes:
    """A 2013 frame with bit 14 of its body properties set (and its check code made good)."""
    data = bytearray(unescape(frame[1:-1])[:-1])
    data[2] |= 0x40
    return b"\x7e" + escape(bytes(data) + bytes((checksum(bytes(data)),))) + b"\x7e"


async def test_a_2019_header_of_another_version_is_counted_and_a_2013_one_with_bit_14_read(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    gw = make_gateway(tanker_registry(tmp_path), mosquitto.port, tmp_path / "spool", hold=None)
    async with running(gw) as address:
        reader, writer = await asyncio.open_connection(*address)
        frames = FrameReader()

        async def answer() -> tuple[Header, object]:
            while True:
                data = await asyncio.wait_for(reader.read(4096), 5)
                assert data, "the gateway closed the connection"
                for f in frames.feed(data):
                    assert not hasattr(f, "error"), f
                    return f.header, decode_body(f.header.msg_id, f.body, f.header.is_2019)  # type: ignore[union-attr]

        try:
            # version 2: a later revision's header, which we cannot know: not answered, counted
            writer.write(
                encode_frame(Header(MsgId.REGISTER, 1, "13800000001", 2), REGISTER.encode(True))
            )
            # version 1 garbled on the line (the check code no longer fits): a bad frame
            garbled = bytearray(
                unescape(
                    encode_frame(
                        Header(MsgId.REGISTER, 3, "13800000001", 1), REGISTER.encode(True)
                    )[1:-1]
                )
            )
            garbled[4] ^= 0x02
            writer.write(b"\x7e" + escape(bytes(garbled)) + b"\x7e")
            # a 2013 terminal that sets bit 14: answered, in a 2013 header
            writer.write(
                with_bit_14(
                    encode_frame(Header(MsgId.REGISTER, 2, "13800000001"), REGISTER.encode(False))
                )
            )
            header, reply = await answer()
            assert header.version is None and header.phone == "013800000001"
            assert isinstance(reply, RegisterResponse)
            assert (reply.ack_serial, reply.result) == (2, RegisterResponse.OK)
            assert gw.server.counters["bad_version"] == 1
            assert gw.server.counters["bad_frame"] == 1
        finally:
            writer.close()
