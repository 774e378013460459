"""The JT/T 808 gateway's MQTT uplink: position records through the durable spool, QoS 1.

Modelled on `gateway.publisher`: every JSON array of records is committed to the spool
(`gateway.spool.Spool`) before the terminal gets its 0x8001, then published in order; it leaves
the spool when the broker acknowledged it. Unlike the Modbus gateway's publisher it keeps a window
of publishes in flight (thousands of terminals share one connection), and it reports spool drops
per vehicle on ``{root}/{tenant}/gateways/{gateway}/dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiomqtt
import orjson

from gateway.jt808.directory import VehicleRef
from gateway.spool import Spool
from telemetry.topics import TopicLayout

__all__ = ["PositionUplink"]

log = logging.getLogger(__name__)
# aiomqtt warns of more than 10 publishes awaiting their PUBACK: with a window that is the plan
_mqtt_log = log.getChild("mqtt")
_mqtt_log.setLevel(logging.ERROR)


class PositionUplink:
    """Owns one MQTT connection and the spool of the JT/T 808 gateway."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        layout: TopicLayout,
        spool: Spool,
        gateway: str = "jt808",
        clock_ms: Callable[[], int],
        username: str | None = None,
        password: str | None = None,
        window: int = 200,
        backoff_max_s: float = 10.0,
    ) -> None:
        self._host, self._port = host, port
        self._layout = layout
        self.spool = spool
        self.gateway = gateway
        self._clock = clock_ms
        self._username, self._password = username, password
        self._window = window
        self._backoff_max = backoff_max_s
        self._wakeup = asyncio.Event()
        self._seq = 0
        self.connected = asyncio.Event()
        self.published = 0
        self.latencies_ms: list[int] = []  # receive-to-PUBACK, drained by whoever reports them

    @property
    def pending(self) -> int:
        return len(self.spool)

    def submit(
        self, ref: VehicleRef, records: tuple[dict[str, object], ...], received_ms: int
    ) -> None:
        """Commit one JSON array of records to the spool (synchronously: it must be durable
        before the terminal is acknowledged)."""
        topic = self._layout.position(ref.tenant, ref.vehicle)
        payload = orjson.dumps(records)
        self._seq += 1
        self.spool.push(
            topic, payload, f"{ref.tenant}/{ref.vehicle}", received_ms, self._seq, len(records)
        )
        self._wakeup.set()

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 5.0) -> None:
        """Publish until `stop` is set, then drain the spool within the timeout."""
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=f"hazardhub-jt808-{self.gateway}",
                    username=self._username,
                    password=self._password,
                    keepalive=30,
                    logger=_mqtt_log,
                    max_inflight_messages=self._window,
                    max_queued_outgoing_messages=self._window * 4,
                ) as client:
                    self.connected.set()
                    backoff = 0.2
                    log.info(
                        "jt808 uplink connected to %s:%d (%d batches spooled)",
                        self._host,
                        self._port,
                        len(self.spool),
                    )
                    await self._report_drops(client)
                    await self._pump(client, stop, drain_timeout_s)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if stop.is_set():
                    log.warning("jt808 uplink: stopping with %d batches spooled", len(self.spool))
                    return
                log.warning(
                    "jt808 uplink: broker unreachable (%s); %d batches spooled; retry in %.1fs",
                    exc,
                    len(self.spool),
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, self._backoff_max)

    async def _report_drops(self, client: aiomqtt.Client) -> None:
        for report in self.spool.drop_reports():
            tenant = report.device.partition("/")[0]
            topic = self._layout.gateway_dropped(tenant, self.gateway)
            payload = orjson.dumps({"gateway": self.gateway, **report.to_json()})
            await client.publish(topic, payload, qos=1)
            self.spool.clear_drop_report(report)
            log.warning("jt808: reported %d dropped batches of %s", report.batches, report.device)

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
                await asyncio.wait([waker, stopper], return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                stopper.cancel()
                await self._report_drops(client)
                continue
            # QoS 1 over one connection: the broker receives them in this order
            await asyncio.gather(*(client.publish(i.topic, i.payload, qos=1) for i in items))
            now = self._clock()
            for item in items:
                self.spool.ack(item)
                self.latencies_ms.append(now - item.epoch)
            self.published += len(items)
            if len(self.latencies_ms) > 100_000:
                del self.latencies_ms[:50_000]
