"""The Modbus gateway's MQTT uplink: telemetry batches through the durable spool, QoS 1.

Every batch is first committed to the spool (`gateway.spool`), then sent in order by
`gateway.uplink.SpoolUplink`; it leaves the spool only when the broker acknowledged it. The hub
dedupes re-sends on (device, epoch, seq). The gateway's retained status is ``online`` while
connected and ``offline`` (its last will) otherwise; spool drops are reported on
``{root}/{tenant}/gateways/{gateway}/dropped``.
"""

from __future__ import annotations

from gateway.spool import DropReport, Spool
from gateway.uplink import SpoolUplink
from telemetry.brokertls import BrokerTls
from telemetry.codec import TelemetryBatch, encode
from telemetry.registry import DeviceInfo
from telemetry.topics import TopicLayout

__all__ = ["MqttPublisher"]


class MqttPublisher(SpoolUplink):
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
        tls: BrokerTls | None = None,
        backoff_max_s: float = 10.0,
        window: int = 100,
        refused_backoff_max_s: float = 60.0,
    ) -> None:
        super().__init__(
            host,
            port,
            spool=spool,
            client_id=f"hazardhub-gw-{tenant}-{gateway}",
            name=gateway,
            status_topic=layout.gateway_status(tenant, gateway),
            label=f"{tenant}/{gateway}",
            username=username,
            password=password,
            tls=tls,
            backoff_max_s=backoff_max_s,
            window=window,
            refused_backoff_max_s=refused_backoff_max_s,
        )
        self._tenant = tenant
        self._layout = layout
        self.dropped_topic = layout.gateway_dropped(tenant, gateway)

    async def submit_batch(self, device: DeviceInfo, batch: TelemetryBatch) -> None:
        topic = self._layout.telemetry(device.tenant, device.site, device.spec.id)
        self.spool.push(topic, encode(batch), batch.device, batch.epoch, batch.seq, len(batch))
        self.wake()

    def _dropped_topic(self, report: DropReport) -> str:
        return self.dropped_topic
