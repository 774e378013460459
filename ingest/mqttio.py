"""The hub's MQTT socket work made cheaper per message, on aiomqtt's paho client.

paho reads a packet with three or four ``recv`` calls (the command byte, each byte of the
remaining length, the rest), one packet per wake-up of the event loop, and writes each PUBACK
on its own. On loopback a ``send`` also does the broker's side of the TCP work, so at a few
thousand messages a second these calls weigh more than decoding the payloads. Two remedies,
both on paho's private parts (the hub already uses ``aiomqtt.Client._client`` for manual
acknowledgement, which aiomqtt does not offer):

- `buffer_reads` puts `BufferedSocket` in front of paho's socket: one ``recv`` of up to 256 KiB
  serves many packets, and its ``pending()`` tells aiomqtt's reader to go on while bytes are
  buffered (the same path aiomqtt takes for TLS sockets, which buffer too).
- `acknowledge` queues the PUBACKs of a batch as one write.

And one remedy for Python 3.11: `HubClient` waits (connect, subscribe, publish, disconnect)
without losing a cancellation (see its docstring). `HubClient` also bounds what QoS 0
publishers can pile up in aiomqtt's inbox (`HubClient.qos0_inbox`).
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as mqtt

from telemetry.mqttclient import BrokerClient

__all__ = ["QOS0_INBOX", "BufferedSocket", "HubClient", "acknowledge", "buffer_reads"]

T = TypeVar("T")

_PUBACK = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2), packet id
_PUBACK_COMMAND = 0x40
_READ_BYTES = 256 * 1024
# QoS 0 messages aiomqtt's inbox takes while it holds fewer (see `HubClient.qos0_inbox`)
QOS0_INBOX = 10_000


class BufferedSocket:
    """A socket whose ``recv`` is served from a buffer filled by large reads; everything else
    goes to the socket itself."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._sock.recv(max(size, _READ_BYTES))  # BlockingIOError: nothing there
            if len(data) <= size:
                return bytes(data)
            self._buf, self._pos = data, 0
        end = self._pos + size
        chunk = self._buf[self._pos : end]
        self._pos = min(end, len(self._buf))
        return chunk

    def pending(self) -> int:
        """Bytes read from the socket and not yet taken (and the TLS layer's, if any)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffer_reads(client: aiomqtt.Client) -> None:
    """Read the connected client's socket through a `BufferedSocket` from now on. Safe between
    two of paho's reads: what it read so far is in its own packet state, not in the socket."""
    paho = client._client
    sock = paho._sock
    if sock is not None and not isinstance(sock, BufferedSocket):
        paho._sock = BufferedSocket(sock)


def acknowledge(client: aiomqtt.Client, messages: Sequence[aiomqtt.Message]) -> None:
    """PUBACK (QoS 1) or PUBCOMP (QoS 2) the messages. paho's `ack` queues each PUBACK on its
    own (a write to its wake-up socket, then one to the broker); here those of a batch go as
    one packet write. A PUBACK is the same four bytes in MQTT 3.1.1 and 5 (no reason code:
    success), and paho keeps no state for an incoming QoS 1 message."""
    paho = client._client
    mids = [m.mid for m in messages if m.qos == 1]
    if mids:
        packet = b"".join([_PUBACK.pack(_PUBACK_COMMAND, 2, mid) for mid in mids])
        paho._packet_queue(_PUBACK_COMMAND, packet, 0, 1)
    for message in messages:
        if message.qos == 2:
            paho.ack(message.mid, message.qos)


class HubClient(BrokerClient):
    """aiomqtt's client, its waits for the broker (CONNACK, SUBACK, PUBACK, the disconnection)
    made with `asyncio.timeout` instead of `asyncio.wait_for`. On Python 3.11, `wait_for` loses
    a cancellation that comes while what it waits for completes (it returns the result instead):
    a hub whose API failed as the broker's CONNACK arrived had its ingest task's cancellation
    lost, and ran on, never ending (helper-132). Same outcome otherwise: what it waits for is
    cancelled with it, and running out of time is aiomqtt's `MqttError` (the signature, a
    `timeout` argument included, is aiomqtt's).

    aiomqtt's inbox is unbounded (a bound would drop QoS 1 messages too, never acknowledged).
    QoS 1 messages are bounded by the broker, which sends no more of them unacknowledged than
    its ``max_inflight_messages``; QoS 0 ones are not, and a publisher flooding them while
    ingest waits (the store held) grew the hub by hundreds of MB (helper-150). A QoS 0 message
    that finds `qos0_inbox` messages waiting is dropped and handed to `on_qos0_dropped` (which
    counts it); QoS 1 messages are always taken."""

    qos0_inbox: int = QOS0_INBOX
    on_qos0_dropped: Callable[[str], None] | None = None  # the topic of a QoS 0 message dropped

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.qos == 0 and self._queue.qsize() >= self.qos0_inbox:
            if self.on_qos0_dropped is not None:
                self.on_qos0_dropped(message.topic)
            return
        super()._on_message(client, userdata, message)

    async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109
        if timeout is None:
            timeout = self.timeout
        try:
            async with asyncio.timeout(None if timeout == math.inf else timeout):
                return await fut
        except TimeoutError:
            msg = "Operation timed out"
            raise aiomqtt.MqttError(msg) from None
