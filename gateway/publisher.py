"""The gateway's MQTT uplink: QoS 1 publishing from the durable spool, reconnecting with backoff.

Every batch is first committed to the spool (`gateway.spool`), then sent in order; it leaves the
spool only when the broker acknowledged it (PUBACK). A broker that goes away, or a gateway that is
killed, costs a re-send of the batch in flight, never a batch: the hub dedupes on
(device, epoch, seq). Batches the spool had to drop (its byte or age limit) are reported on
``{root}/{tenant}/gateways/{gateway}/dropped`` once the link is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import aiomqtt
import orjson

from gateway.spool import Spool
from telemetry.codec import TelemetryBatch, encode
from telemetry.registry import DeviceInfo
from telemetry.topics import TopicLayout

__all__ = ["MqttPublisher"]

log = logging.getLogger(__name__)


class MqttPublisher:
    """Owns one MQTT connection for one gateway of one tenant, and its spool."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tenant: str,
        gateway: str,
        layout: TopicLayout,
        spool: Spool,
        username: str | None = None,
        password: str | None = None,
        backoff_max_s: float = 10.0,
        window: int = 100,
    ) -> None:
        self._host, self._port = host, port
        self._tenant, self._gateway = tenant, gateway
        self._layout = layout
        self.spool = spool
        self._username, self._password = username, password
        self._backoff_max = backoff_max_s
        self._window = window
        self._wakeup = asyncio.Event()
        self.status_topic = layout.gateway_status(tenant, gateway)
        self.dropped_topic = layout.gateway_dropped(tenant, gateway)
        self.connected = asyncio.Event()
        self.published: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)

    @property
    def pending(self) -> int:
        return len(self.spool)

    async def submit_batch(self, device: DeviceInfo, batch: TelemetryBatch) -> None:
        topic = self._layout.telemetry(device.tenant, device.site, device.spec.id)
        self.spool.push(topic, encode(batch), batch.device, batch.epoch, batch.seq, len(batch))
        self._wakeup.set()

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 5.0) -> None:
        """Publish until `stop` is set, then drain the spool (within the timeout)."""
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    identifier=f"hazardhub-gw-{self._tenant}-{self._gateway}",
                    username=self._username,
                    password=self._password,
                    will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
                    keepalive=30,
                ) as client:
                    await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    self.connected.set()
                    backoff = 0.2
                    log.info(
                        "gateway %s/%s connected to %s:%d (%d batches spooled)",
                        self._tenant,
                        self._gateway,
                        self._host,
                        self._port,
                        len(self.spool),
                    )
                    await self._report_drops(client)
                    await self._pump(client, stop, drain_timeout_s)
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True)
                    return
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if stop.is_set():
                    log.warning(
                        "gateway %s/%s: stopping with %d batches spooled; they are sent at the "
                        "next start",
                        self._tenant,
                        self._gateway,
                        len(self.spool),
                    )
                    return
                log.warning(
                    "gateway %s/%s: broker unreachable (%s); %d batches spooled; retry in %.1fs",
                    self._tenant,
                    self._gateway,
                    exc,
                    len(self.spool),
                    backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, self._backoff_max)

    async def _report_drops(self, client: aiomqtt.Client) -> None:
        for report in self.spool.drop_reports():
            payload = orjson.dumps({"gateway": self._gateway, **report.to_json()})
            await client.publish(self.dropped_topic, payload, qos=1)
            self.spool.clear_drop_report(report)
            log.warning(
                "gateway %s: reported %d dropped batches of %s",
                self._gateway,
                report.batches,
                report.device,
            )

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event, drain_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if stop.is_set() and deadline is None:
                deadline = loop.time() + drain_s
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
            for item in items:
                if deadline is not None and loop.time() > deadline:
                    return
                await client.publish(item.topic, item.payload, qos=1)
                self.spool.ack(item)
                self.published[item.device][(item.epoch, item.seq)] = item.readings
