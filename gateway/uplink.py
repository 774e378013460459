"""The durable MQTT uplink that the gateways share: QoS 1 publishing from a `Spool`.

Every message is committed to the spool before anyone is told it was taken; it leaves the spool
only when the broker acknowledged it (PUBACK), a window of publishes at a time (QoS 1 over one
connection: the broker receives them in order). A broker that goes away, or a process that is
killed, costs a re-send of what was in flight, never a message. Batches the spool had to drop
(its byte or age limit) are reported once the link is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiomqtt
import orjson

from gateway.spool import DropReport, Spool, Spooled

__all__ = ["SpoolUplink"]

log = logging.getLogger(__name__)
# aiomqtt warns of more than 10 publishes awaiting their PUBACK: with a window that is the plan
_mqtt_log = log.getChild("mqtt")
_mqtt_log.setLevel(logging.ERROR)


def _connection_end(client: aiomqtt.Client) -> asyncio.Future[None]:
    """The future aiomqtt ends when the client's connection does (with the error when the broker
    went away). It keeps it private; a client that only publishes has nothing else to wait on."""
    return client._disconnected


class SpoolUplink:
    """Owns one MQTT connection and drains one spool into it. Subclasses say where drop
    reports go (`_dropped_topic`) and what to note when messages were acknowledged (`_sent`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        spool: Spool,
        client_id: str,
        name: str,
        status_topic: str | None = None,
        label: str | None = None,
        username: str | None = None,
        password: str | None = None,
        backoff_max_s: float = 10.0,
        window: int = 100,
    ) -> None:
        self._host, self._port = host, port
        self.spool = spool
        self._client_id = client_id
        self.name = name
        self.label = (
            label or name
        )  # in the log: tenant/gateway, where two tenants' may share a name
        self.status_topic = status_topic
        self._username, self._password = username, password
        self._backoff_max = backoff_max_s
        self._window = window
        self._wakeup = asyncio.Event()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # set while `connected` is not
        self.disconnected.set()

    @property
    def pending(self) -> int:
        return len(self.spool)

    def wake(self) -> None:
        """Something was pushed to the spool."""
        self._wakeup.set()

    def _dropped_topic(self, report: DropReport) -> str:
        raise NotImplementedError

    def _sent(self, items: Sequence[Spooled]) -> None:
        """Called with each window the broker acknowledged."""

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 5.0) -> None:
        """Publish until `stop` is set, then drain the spool (within the timeout)."""
        backoff = 0.2
        will = (
            aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True)
            if self.status_topic
            else None
        )
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=self._client_id,
                    username=self._username,
                    password=self._password,
                    will=will,
                    keepalive=30,
                    logger=_mqtt_log,
                    max_inflight_messages=self._window,
                    max_queued_outgoing_messages=self._window * 4,
                ) as client:
                    if self.status_topic:
                        await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    self.connected.set()
                    self.disconnected.clear()
                    backoff = 0.2
                    log.info(
                        "%s connected to %s:%d (%d messages spooled)",
                        self.label,
                        self._host,
                        self._port,
                        len(self.spool),
                    )
                    try:
                        await self._report_drops(client)
                        await self._pump(client, stop, drain_timeout_s)
                    except asyncio.CancelledError:
                        # going down on another task's error: leaving the block disconnects
                        # cleanly, and the broker drops the will; so say it
                        await self._say_offline(client)
                        raise
                    if self.status_topic:
                        await client.publish(self.status_topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.disconnected.set()
                if stop.is_set():
                    log.warning(
                        "%s: stopping with %d messages spooled; they are sent at the next start",
                        self.label,
                        len(self.spool),
                    )
                    return
                log.warning(
                    "%s: broker unreachable (%s); %d messages spooled; retry in %.1fs",
                    self.label,
                    exc,
                    len(self.spool),
                    backoff,
                )
                with contextlib.suppress(TimeoutError):  # (not 3.11's wait_for: it may lose
                    async with asyncio.timeout(backoff):  # a cancellation)
                        await stop.wait()
                backoff = min(backoff * 2, self._backoff_max)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """`offline` on the status topic (if any), given at most 2 s."""
        if self.status_topic:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True)

    async def _report_drops(self, client: aiomqtt.Client) -> None:
        for report in self.spool.drop_reports():
            payload = orjson.dumps({"gateway": self.name, **report.to_json()})
            await client.publish(self._dropped_topic(report), payload, qos=1)
            self.spool.clear_drop_report(report)
            log.warning(
                "%s: reported %d dropped batches of %s", self.label, report.batches, report.device
            )

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event, drain_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if stop.is_set() and deadline is None:
                deadline = loop.time() + drain_s
            if deadline is not None and loop.time() > deadline:
                return
            items = self.spool.peek(self._window)
            if not items:
                if stop.is_set():
                    return
                self._wakeup.clear()
                if len(self.spool):
                    continue
                waker = asyncio.ensure_future(self._wakeup.wait())
                stopper = asyncio.ensure_future(stop.wait())
                gone = _connection_end(client)  # the client's own: never cancelled here
                waits: list[asyncio.Future[Any]] = [waker, stopper, gone]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                stopper.cancel()
                if gone.done():
                    # an idle link lost: said now (not at the next reading, which may be hours
                    # away), and the client's error taken, not left to the garbage collector
                    # ("Future exception was never retrieved" at the gateway's stop)
                    why = gone.exception()
                    if not stop.is_set():
                        raise aiomqtt.MqttError(f"the connection ended ({why})")
                await self._report_drops(client)
                continue
            await asyncio.gather(*(client.publish(i.topic, i.payload, qos=1) for i in items))
            for item in items:
                self.spool.ack(item)
            self._sent(items)
