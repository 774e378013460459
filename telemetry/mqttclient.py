"""aiomqtt's client as the hub and the gateways need it at connect time, shared by both.

- A connection the broker closes before its CONNACK is said at once, with the error paho saw on
  the socket: aiomqtt ignores a disconnection before the CONNACK and waited out its timeout (10
  s), "timed out", where a TLS broker requiring a client certificate had refused at the first
  read (`TLSV13_ALERT_CERTIFICATE_REQUIRED`, helper-157), and that silence also looked like a
  broker that does not speak MQTT 5 to the gateways.
- A connection refused or never answered has its socket closed: aiomqtt leaves it open, and a
  broker still reading its CONNECT (amqtt, an MQTT 5 one) would wait on it for ever while the
  process kept a file per attempt.
- A process told to stop while it waits for the broker's CONNACK gives the connection up at once
  (`BrokerClient.stopped_by`): it waited out aiomqtt's timeout (10 s) first, and a hub or gateway
  stopped while its broker accepted TCP and said nothing (a half-started broker, a firewall's
  proxy) took that long to end. Nothing is lost: nothing was taken or sent on that connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["BrokerClient", "ConnectStopped"]


class ConnectStopped(aiomqtt.MqttError):
    """The connection was given up: the process is stopping (`BrokerClient.stopped_by`)."""

    def __init__(self) -> None:
        super().__init__("stopped while connecting to the broker")


class BrokerClient(aiomqtt.Client):
    """aiomqtt's client with the connect-time fixes above."""

    _socket_error = ""  # paho's last error on the socket in this connection attempt
    _stop: asyncio.Event | None = None

    def stopped_by(self, stop: asyncio.Event) -> Self:
        """Give up connecting (`ConnectStopped`, an `aiomqtt.MqttError`) once `stop` is set,
        or at once if it is; a connection made is the caller's to end. Returns the client."""
        self._stop = stop
        return self

    async def __aenter__(self) -> Self:
        self._socket_error = ""
        self._client.on_log = self._on_paho_log
        stop = self._stop
        if stop is not None and stop.is_set():
            raise ConnectStopped
        connecting = self._connected  # aiomqtt's, done at the CONNACK (or a failure)
        watch = None if stop is None else asyncio.ensure_future(stop.wait())
        if watch is not None:
            # aiomqtt's own failure path ends the wait: its lock released, its state reset
            # (the TCP connection, made in a thread, is not interrupted: it ends first)
            watch.add_done_callback(lambda w: _give_up(w, connecting))
        try:
            return await super().__aenter__()
        except aiomqtt.MqttError:
            self._client._sock_close()
            raise
        finally:
            if watch is not None:
                watch.cancel()
            if connecting.done() and not connecting.cancelled():
                connecting.exception()  # taken: not "never retrieved" when the TCP part failed

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


def _give_up(watch: asyncio.Future[Any], connecting: asyncio.Future[None]) -> None:
    """`stop` was set (`watch` done, not cancelled) before the CONNACK: fail the connect's wait."""
    if not watch.cancelled() and not connecting.done():
        connecting.set_exception(ConnectStopped())
