"""The hub's commands for vehicle terminals, received over MQTT by the JT/T 808 gateway.

The hub publishes `{root}/{tenant}/vehicles/{vehicle}/command` (QoS 1) with a JSON object; the
gateway subscribes with a persistent session (commands sent while it was away come when it is
back) and passes each to the terminal of that vehicle:

  {"command": "confirm_alarm", "alarm_type": 1, "alarm_serial": 0}
      0x8203: the platform confirms the terminal's alarms of `alarm_type` (JT/T 808 bits);
      serial 0 confirms all of them. Sent when an operator acknowledges a terminal alarm.

  {"command": "remind", "alarm_id": 17, "kind": "overspeed", "text": "您已超速，请减速行驶",
   "ts": 1795961100000, "at": 1795961102310}
      0x8300: a reminder to the driver (shown, read aloud) of the alarm `alarm_id` the hub
      raised at `ts` (event time), asked at `at` (the hub's clock, ms): sent at once, or within
      a minute of `at` when the terminal comes back, else dropped (`Jt808Server.remind`).

A `supervise_alarm` (the centre's 督办 of an alarm, for the vehicle's JT/T 809 platform) is not
for this gateway: counted ``not_for_jt808``, nothing logged.

A confirmation for a terminal that is not connected is counted (``not_connected``) and kept by
the server, which sends it when the terminal authenticates again (`Jt808Server.confirm_alarm`):
the terminal holds bits 0, 3, 20, 21, 27 and 28 until confirmed and a bit that stays set raises
nothing new, so a dropped confirmation would leave its alarm active for good. A malformed command
is counted and logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Protocol

import orjson

from gateway.commandfeed import follow_commands
from telemetry.brokertls import BrokerTls
from telemetry.errors import TopicError
from telemetry.fleetconfig import REMIND_MAX_CHARS
from telemetry.jt808.messages import TextMessage
from telemetry.topics import TopicLayout, VehicleCommandTopic

__all__ = ["CommandListener", "Confirmer"]

log = logging.getLogger(__name__)


class Confirmer(Protocol):
    def confirm_alarm(
        self, tenant: str, vehicle: str, alarm_serial: int = 0, alarm_type: int = 0
    ) -> bool:
        """Send 0x8203 now (True), or keep it for the terminal's next authentication (False)."""

    def remind(self, tenant: str, vehicle: str, alarm_id: int, text: str, at_ms: int) -> str:
        """Send 0x8300 now, or keep it a while; what happened (sent, kept, stale ...)."""


class CommandListener:
    def __init__(
        self,
        server: Confirmer,
        host: str,
        port: int,
        *,
        layout: TopicLayout | None = None,
        client_id: str = "hazardhub-jt808-commands",
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.server = server
        self.host, self.port = host, port
        self.layout = layout or TopicLayout()
        self.client_id = client_id
        self._username, self._password = username, password
        self._tls = tls
        self.counters: Counter[str] = Counter()
        self.subscribed = asyncio.Event()

    def handle(self, topic: str, payload: bytes) -> str:
        """Carry out one command; returns what happened (also counted)."""
        try:
            outcome = self._handle(topic, payload)
        except Exception:  # our bug: one command lost, never the listener (nor the gateway)
            log.exception("jt808 command on %s could not be carried out", topic)
            outcome = "internal_error"
        self.counters[outcome] += 1
        return outcome

    def _handle(self, topic: str, payload: bytes) -> str:
        try:
            where = self.layout.parse(topic)
        except TopicError as exc:
            log.warning("jt808 command on a bad topic: %s", exc)
            return "rejected"
        if not isinstance(where, VehicleCommandTopic):
            return "rejected"
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("jt808 command for %s/%s is not JSON", where.tenant, where.vehicle)
            return "rejected"
        if isinstance(doc, dict) and doc.get("command") == "remind":
            return self._remind(where, doc)
        if isinstance(doc, dict) and doc.get("command") == "supervise_alarm":
            return "not_for_jt808"  # the centre's 督办: the JT/T 809 gateway's (gateway.jt809)
        if not isinstance(doc, dict) or doc.get("command") != "confirm_alarm":
            log.warning("jt808 command for %s/%s unknown: %.200r", where.tenant, where.vehicle, doc)
            return "rejected"
        kind, serial = doc.get("alarm_type", 0), doc.get("alarm_serial", 0)
        if (
            not all(isinstance(x, int) and 0 <= x < 2**32 for x in (kind, serial))
            or serial > 0xFFFF
        ):
            return "rejected"
        if self.server.confirm_alarm(where.tenant, where.vehicle, serial, kind):
            return "confirmed"
        log.info(
            "jt808: %s/%s is not connected; the confirmation is kept for its terminal's next "
            "authentication if the terminal was served by this gateway",
            where.tenant,
            where.vehicle,
        )
        return "not_connected"

    def _remind(self, where: VehicleCommandTopic, doc: dict[str, object]) -> str:
        alarm_id, text, at = doc.get("alarm_id"), doc.get("text"), doc.get("at")
        if not (
            isinstance(alarm_id, int)
            and isinstance(at, int)
            and not isinstance(alarm_id, bool)
            and isinstance(text, str)
            and 0 <= alarm_id < 2**63
            and 0 < len(text) <= REMIND_MAX_CHARS
        ):
            log.warning("jt808 reminder for %s/%s unreadable", where.tenant, where.vehicle)
            return "rejected"
        try:
            TextMessage(0, text).encode(False)
        except ValueError as exc:
            log.warning("jt808 reminder for %s/%s: %s", where.tenant, where.vehicle, exc)
            return "rejected"
        return "reminder_" + self.server.remind(where.tenant, where.vehicle, alarm_id, text, at)

    async def run(self, stop: asyncio.Event) -> None:
        await follow_commands(
            stop,
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            username=self._username,
            password=self._password,
            tls=self._tls,
            filters=[self.layout.vehicle_commands()],
            handle=self.handle,
            subscribed=self.subscribed,
            label="jt808 commands",
            log=log,
        )
