"""A terminal's retransmission (JT/T 808: no 0x8001 within T, the same message sent again,
same serial, T x (k + 1) after its k-th) over a real TCP connection to a running gateway and a
real Mosquitto: answered every time, published once. The gateway published it again, and the hub
counted the second record of the same instant as a late position. A serial number reused with
another body (it wrapped round) is a new message; a retransmission on a new connection (the
link lost with the answer) is still one."""

from __future__ import annotations

from pathlib import Path

import pytest
from jt808_helpers import (
    ONE_TANKER,
    PHONE,
    RawTerminal,
    fix,
    frame,
    make_gateway,
    positions,
    registry_of,
    running,
    stamps,
    until,
)

from gateway.jt808 import Jt808Gateway, VehicleRef
from gateway.jt808.repeats import WINDOW, Repeats, repeat_key
from simulators.jt808 import Jt808Terminal, location_of
from telemetry.jt808 import BatchLocation, MsgId
from telemetry.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, ONE_TANKER)


async def test_a_retransmission_is_answered_again_and_published_once(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool")  # each message as it comes
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        async with Jt808Terminal(host, port, PHONE, "苏A·D1234") as t:
            await t.login()
        assert t.auth_code is not None
        raw = RawTerminal()
        await raw.open(host, port, t.auth_code)

        first = frame(MsgId.LOCATION, 7, location_of(fix(0)).encode(False))
        await raw.send(first, 1)
        await raw.send(first, 1)  # its answer did not come in time: sent again, unchanged
        # the serial reused (wrapped round) with another body: a new message
        await raw.send(frame(MsgId.LOCATION, 7, location_of(fix(1)).encode(False)), 1)
        batch = BatchLocation(BatchLocation.BACKFILL, (location_of(fix(2)), location_of(fix(3))))
        backfill = frame(MsgId.BATCH_LOCATION, 8, batch.encode(False))
        await raw.send(backfill, 1)
        await raw.send(backfill, 1)
        await raw.close()

        # the link was lost with the answer: the terminal sends it again on a new one
        again = RawTerminal()
        await again.open(host, port, t.auth_code)
        await again.send(first, 1)
        # twice in one write (one read of the gateway's): the copy is one too
        last = frame(MsgId.LOCATION, 9, location_of(fix(4)).encode(False))
        await again.send(last + last, 2)
        await again.send(frame(MsgId.LOCATION, 10, location_of(fix(5)).encode(False)), 1)
        await again.close()

        answered = [(a.ack_serial, a.ack_msg_id, a.result) for a in raw.answers[1:]]
        assert answered == [
            (7, MsgId.LOCATION, 0),
            (7, MsgId.LOCATION, 0),
            (7, MsgId.LOCATION, 0),
            (8, MsgId.BATCH_LOCATION, 0),
            (8, MsgId.BATCH_LOCATION, 0),
        ]
        assert [(a.ack_serial, a.result) for a in again.answers[1:]] == [
            (7, 0),
            (9, 0),
            (9, 0),
            (10, 0),
        ]
        # the last one published: every one before it is in (published in order)
        await until(lambda: any(r["ts"] == fix(5).ts_ms for _, rs in got for r in rs))
        assert stamps(got) == [fix(i).ts_ms for i in range(6)]  # each once
        assert gw.server.counters["retransmitted"] == 4
        assert gw.server.counters["positions"] == 6


def test_the_window_is_bounded_per_vehicle() -> None:
    a, b = VehicleRef("t", "a"), VehicleRef("t", "b")
    repeats = Repeats()
    keys = [repeat_key(MsgId.LOCATION, k, b"body") for k in range(WINDOW + 1)]
    for key in keys:
        repeats.remember(a, key)
    assert len(repeats) == WINDOW
    assert not repeats.seen(a, keys[0])  # the oldest went
    assert all(repeats.seen(a, key) for key in keys[1:])
    assert not repeats.seen(b, keys[1])  # another vehicle's are its own
    # the id, the serial and the body each make another message
    key = repeat_key(MsgId.LOCATION, 1, b"body")
    assert key != repeat_key(MsgId.BATCH_LOCATION, 1, b"body")
    assert key != repeat_key(MsgId.LOCATION, 2, b"body")
    assert key != repeat_key(MsgId.LOCATION, 1, b"bodY")


async def test_a_message_not_taken_is_taken_when_it_comes_again(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    """The spool failed on the first copy (its connection closed unanswered): the window must
    not hold it, or the terminal's retransmission would be answered and the position lost."""
    gw = make_gateway(registry, mosquitto.port, tmp_path / "spool")
    async with positions(mosquitto.port) as got, running(gw) as (host, port):
        async with Jt808Terminal(host, port, PHONE, "苏A·D1234") as t:
            await t.login()
        assert t.auth_code is not None
        uplink = gw.server.holding.uplink
        submit = uplink.submit

        def disk_full(*args: object) -> None:
            uplink.submit = submit  # type: ignore[method-assign]
            raise OSError("disk full")

        uplink.submit = disk_full  # type: ignore[method-assign]
        raw = RawTerminal()
        await raw.open(host, port, t.auth_code)
        first = frame(MsgId.LOCATION, 7, location_of(fix(0)).encode(False))
        await raw.write(first)
        await until(lambda: gw.server.counters["internal_error"] == 1)
        await raw.close()
        assert len(raw.answers) == 1  # the authentication's only: the position unanswered

        again = RawTerminal()
        await again.open(host, port, t.auth_code)
        await again.send(first, 1)
        await again.close()
        await until(lambda: any(r["ts"] == fix(0).ts_ms for _, rs in got for r in rs))
        assert gw.server.counters["retransmitted"] == 0


async def test_a_retransmission_across_a_gateway_restart_is_published_once(  # type: ignore[no-untyped-def]
    mosquitto, registry: Registry, tmp_path: Path
) -> None:
    """The window lived in memory: a gateway restarted between a message and its
    retransmission (the answer lost with the old process's link) published it twice, and the hub
    counted the second record late. It is kept in the spool folder now."""

    def gateway() -> Jt808Gateway:
        return make_gateway(registry, mosquitto.port, tmp_path / "spool")

    first = frame(MsgId.LOCATION, 7, location_of(fix(0)).encode(False))
    batch = BatchLocation(BatchLocation.BACKFILL, (location_of(fix(1)), location_of(fix(2))))
    backfill = frame(MsgId.BATCH_LOCATION, 8, batch.encode(False))
    async with positions(mosquitto.port) as got:
        async with running(gateway()) as (host, port):
            async with Jt808Terminal(host, port, PHONE, "苏A·D1234") as t:
                await t.login()
            assert t.auth_code is not None
            raw = RawTerminal()
            await raw.open(host, port, t.auth_code)
            await raw.send(first, 1)
            await raw.send(backfill, 1)
            await raw.close()
            await until(lambda: len([r for _, rs in got for r in rs]) == 3)

        gw = gateway()  # the same spool folder
        async with running(gw) as (host, port):
            again = RawTerminal()
            await again.open(host, port, t.auth_code)
            await again.send(first, 1)  # sent again: its answer was lost
            await again.send(backfill, 1)
            await again.send(frame(MsgId.LOCATION, 9, location_of(fix(3)).encode(False)), 1)
            await again.close()
            assert [(a.ack_serial, a.result) for a in again.answers[1:]] == [(7, 0), (8, 0), (9, 0)]
            await until(lambda: any(r["ts"] == fix(3).ts_ms for _, rs in got for r in rs))
            assert stamps(got) == [fix(i).ts_ms for i in range(4)]  # each once
            assert gw.server.counters["retransmitted"] == 2


def test_the_kept_window_is_bounded_and_forgets_old_keys(tmp_path: Path) -> None:
    """At most WINDOW rows per vehicle in the file; keys older than KEEP_MS are not read back."""
    from gateway.jt808.repeats import KEEP_MS

    path = tmp_path / "repeats.db"
    a, b = VehicleRef("t", "a"), VehicleRef("t", "b")
    repeats = Repeats(path=path, now_ms=0)
    keys = [repeat_key(MsgId.LOCATION, k, b"body") for k in range(WINDOW + 5)]
    for n, key in enumerate(keys):
        repeats.remember(a, key, 1_000 + n)
    repeats.remember(b, keys[0], 1_000)
    repeats.close()
    assert path.stat().st_mode & 0o777 == 0o600  # whose vehicles these are: the spool's mode
    back = Repeats(path=path, now_ms=2_000)
    assert len(back) == WINDOW + 1
    assert not back.seen(a, keys[4]) and all(back.seen(a, k) for k in keys[5:])
    back.remember(a, keys[0], 3_000)  # the oldest of the ring goes, as in memory
    assert not back.seen(a, keys[5]) and back.seen(a, keys[0])
    back.close()
    assert len(Repeats(path=path, now_ms=3_000 + KEEP_MS)) == 1  # the one of 3_000 only
