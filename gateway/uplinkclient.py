"""The uplink's MQTT client (`gateway.uplink.SpoolUplink`): aiomqtt's, with the broker's PUBACK
reason code kept, so that a publish the broker refused (MQTT 5) stays in the spool."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from telemetry.mqttclient import BrokerClient

__all__ = ["REFUSED", "UplinkClient"]

# a PUBACK's reason code from 0x80 on: the broker did not take the message (MQTT 5)
REFUSED = 0x80


class _Ack(asyncio.Event):
    """A publish's PUBACK came; `reason` is its reason code."""

    reason: ReasonCode = ReasonCode(PacketTypes.PUBACK)


class UplinkClient(BrokerClient):
    """aiomqtt's client with the broker's PUBACK reason code kept: aiomqtt 2.5 ignores it in its
    `_on_publish` (a publish the broker refused looked sent, and its batch left the spool,
    helper-150). `publish_acked` returns it."""

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        ack = self._pending_publishes.pop(mid, None)
        if ack is not None:
            if isinstance(ack, _Ack):
                ack.reason = reason_code
            ack.set()

    async def publish_acked(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> ReasonCode:
        """Publish at QoS 1 and wait for the broker's PUBACK (`timeout`, aiomqtt's `MqttError`
        when it runs out): its reason code, ``value >= REFUSED`` when the broker refused the
        message (MQTT 5; a 3.1.1 PUBACK is always a success)."""
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        ack = _Ack()
        with self._pending_call(info.mid, ack, self._pending_publishes):
            if info.is_published():  # (paho said so before it returned: a success)
                return ack.reason
            try:  # (not 3.11's wait_for: it may lose a cancellation)
                async with asyncio.timeout(self.timeout):
                    await ack.wait()
            except TimeoutError:
                raise aiomqtt.MqttError("Operation timed out") from None
        return ack.reason
