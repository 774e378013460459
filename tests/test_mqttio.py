"""The hub's MQTT socket helpers: the buffered socket paho reads through, the PUBACKs of a batch
written as one packet (and the broker taking them: tests/test_e2e.py, tests/test_hub_kill.py);
the ingest's waits, which keep a cancellation that comes as what they wait for is done (the hub
ending when a task fails: tests/test_hub_ends.py)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ingest.mqttio import BufferedSocket, HubClient, acknowledge
from ingest.service import _until


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_reads_are_served_from_one_large_read(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(b"\x30\x05hello\x30\x02hi")
    sock = BufferedSocket(b)
    assert sock.pending() == 0
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 10  # the rest was read at once
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert sock.recv(100) == b"\x30\x02hi"  # a short read, as a socket may give
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    a.sendall(b"xy")
    assert sock.recv(2) == b"xy"
    a.close()
    assert sock.recv(1) == b""  # the peer closed


def test_everything_else_goes_to_the_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sock = BufferedSocket(b)
    assert sock.fileno() == b.fileno()
    sock.send(b"ok")
    assert a.recv(2) == b"ok"


@dataclass
class _Msg:
    mid: int
    qos: int


class _Paho:
    def __init__(self) -> None:
        self.queued: list[tuple[int, bytes, int, int]] = []
        self.acked: list[tuple[int, int]] = []

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int) -> None:
        self.queued.append((command, packet, mid, qos))

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append((mid, qos))


def test_pubacks_of_a_batch_are_one_packet_write() -> None:
    paho = _Paho()

    class Client:
        _client = paho

    msgs: list[Any] = [_Msg(7, 1), _Msg(0, 0), _Msg(65535, 1), _Msg(9, 2), _Msg(8, 1)]
    acknowledge(Client(), msgs)  # type: ignore[arg-type]
    assert len(paho.queued) == 1
    command, packet, _, _ = paho.queued[0]
    assert command == 0x40
    assert packet == b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in (7, 65535, 8))
    assert paho.acked == [(9, 2)]  # QoS 2 completes through paho; QoS 0 needs nothing
    acknowledge(Client(), [_Msg(0, 0)])  # type: ignore[list-item]
    assert len(paho.queued) == 1


async def _cancelled_as_done(
    wait: asyncio.Task[object], done: asyncio.Future[None] | asyncio.Event
) -> None:
    """`wait` is waiting for `done`; `done` completes and `wait` is cancelled before it runs
    again (the CONNACK read in the loop's turn that cancelled the hub's ingest): the
    cancellation must come out (Python 3.11's `asyncio.wait_for` returned the result instead,
    and the ingest never ended)."""
    await asyncio.sleep(0)  # waiting
    await asyncio.sleep(0)
    if isinstance(done, asyncio.Event):
        done.set()
    else:
        done.set_result(None)
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait


async def test_a_wait_for_the_broker_keeps_a_cancellation_that_comes_as_it_answers() -> None:
    client = HubClient("127.0.0.1", 1)  # never connected: only its wait is used
    answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    wait = asyncio.create_task(client._wait_for(answered, timeout=None))
    await _cancelled_as_done(wait, answered)  # type: ignore[arg-type]


async def test_the_ingest_loops_wait_keeps_a_cancellation_that_comes_as_it_is_woken() -> None:
    woken = asyncio.Event()
    wait = asyncio.create_task(_until(woken, 5.0))
    await _cancelled_as_done(wait, woken)  # type: ignore[arg-type]
