"""aiomqtt's client as the hub and the gateways need it at connect time, shared by both.

- A connection the broker closes before its CONNACK is said at once, with the error paho saw on
  the socket: aiomqtt ignores a disconnection before the CONNACK and waited out its timeout (10
  s), "timed out", where a TLS broker requiring a client certificate had refused at the first
  read (`TLSV13_ALERT_CERTIFICATE_REQUIRED`, helper-157), and that silence also looked like a
  broker that does not speak MQTT 5 to the gateways.
- A connection refused or never answered has its socket closed: aiomqtt leaves it open, and a
  broker still reading its CONNECT (amqtt, an MQTT 5 one) would wait on it for ever while the
  process kept a file per attempt.
"""

from __future__ import annotations

from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["BrokerClient"]


class BrokerClient(aiomqtt.Client):
    """aiomqtt's client with the two connect-time fixes above."""

    _socket_error = ""  # paho's last error on the socket in this connection attempt

    async def __aenter__(self) -> Self:
        self._socket_error = ""
        self._client.on_log = self._on_paho_log
        try:
            return await super().__aenter__()
        except aiomqtt.MqttError:
            self._client._sock_close()
            raise

    def _on_paho_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self._socket_error = text

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            why = self._socket_error or str(reason_code)
            self._connected.set_exception(
                aiomqtt.MqttError(f"the broker ended the connection before its CONNACK ({why})")
            )
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
