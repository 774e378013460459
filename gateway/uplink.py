"""The durable MQTT uplink that the gateways share: QoS 1 publishing from a `Spool`.

Every message is committed to the spool before anyone is told it was taken; it leaves the spool
only when the broker acknowledged it (PUBACK), a window of publishes at a time (QoS 1 over one
connection: the broker receives them in order). A broker that goes away, or a process that is
killed, costs a re-send of what was in flight, never a message. Batches the spool had to drop
(its byte or age limit) are reported once the link is back.

The link speaks MQTT 5, whose PUBACK says whether the broker took the message: one it refused
(reason code 0x80 or above, e.g. 0x87 not authorized: the broker's ACL does not let the gateway's
user publish there) stays in the spool, counted (``publish_refused`` in `counters`) and logged once
per topic and reason; that topic is tried again after a pause (doubling up to
`refused_backoff_max_s`) while the other topics go on. A broker that refuses MQTT 5 at the
connection is spoken to in MQTT 3.1.1, whose PUBACK says nothing: there a refused publish cannot
be told from a taken one and leaves the spool (said once, at warning level, when it falls back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from gateway.counters import changed_since
from gateway.spool import DropReport, Spool, Spooled
from gateway.uplinkclient import REFUSED, UplinkClient
from telemetry.brokerlogin import login_refused
from telemetry.brokertls import BrokerTls, tls_context

__all__ = ["REFUSED", "SpoolUplink", "UplinkClient"]

log = logging.getLogger(__name__)
# aiomqtt warns of more than 10 publishes awaiting their PUBACK: with a window that is the plan
_mqtt_log = log.getChild("mqtt")
_mqtt_log.setLevel(logging.ERROR)


# a CONNACK's answer to an MQTT 5 CONNECT from a broker that speaks 3.1.1 only (paho reads the
# 3.1.1 code 1, "unacceptable protocol version", as 0x84; amqtt, the demo's broker, answers so)
_NO_MQTT5 = (1, 0x84)
_TIMEOUT_S = 10.0  # for a CONNACK and a PUBACK (aiomqtt's default)
_FIRST_CONNACK_S = 3.0  # for the CONNACK of an MQTT 5 CONNECT to a broker not heard in MQTT 5


@dataclass(slots=True)
class _Refusal:
    """A topic whose last publish the broker refused: not tried again before `retry_at` (the
    event loop's time)."""

    reason: ReasonCode
    retry_at: float
    pause_s: float
    refused: int = 0  # publishes refused since the topic was last taken


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
        tls: BrokerTls | None = None,
        backoff_max_s: float = 10.0,
        window: int = 100,
        refused_backoff_max_s: float = 60.0,
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
        self._tls = tls
        self._backoff_max = backoff_max_s
        self._refused_backoff_max = refused_backoff_max_s
        self._window = window
        self.protocol = aiomqtt.ProtocolVersion.V5  # 3.1.1 once a broker refused 5
        self._spoke_mqtt5 = False  # a connection in MQTT 5 was made
        # a CONNECT in MQTT 5 went unanswered once: tried again with the whole timeout before
        # falling back (helper-158: a slow first CONNACK, a link of 4 s, made it 3.1.1 for good)
        self._waited_v5 = False
        self.connack_retry_s = _TIMEOUT_S  # that try's wait (a test of a silent broker shortens it)
        # what went wrong, counted (``publish_refused``); the JT/T 808 gateway shares its server's
        self.counters: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._refusals: dict[str, _Refusal] = {}  # by topic
        self._told: set[tuple[str, int]] = set()  # (topic, reason code) refusals logged
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

    def report_counters(self) -> str | None:
        """Log (info) the counters that changed since the last report, with their totals;
        nothing when none changed. Returns the line logged."""
        since = changed_since(self.counters, self._reported)
        if since is None:
            return None
        line = f"{self.label}: {len(self.spool)} messages spooled; since the last report: {since}"
        self._reported = self.counters.copy()
        log.info("%s", line)
        return line

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
                entered = False
                async with UplinkClient(
                    self._host,
                    self._port,
                    protocol=self.protocol,
                    # a broker never heard in MQTT 5 may not speak it and not say so (amqtt
                    # reads the CONNECT's will wrong, and waits): a short wait for its CONNACK
                    timeout=(
                        _TIMEOUT_S
                        if self._spoke_mqtt5
                        else self.connack_retry_s
                        if self._waited_v5
                        else _FIRST_CONNACK_S
                    ),
                    identifier=self._client_id,
                    username=self._username,
                    password=self._password,
                    tls_context=tls_context(self._tls),
                    will=will,
                    keepalive=30,
                    logger=_mqtt_log,
                    max_inflight_messages=self._window,
                    max_queued_outgoing_messages=self._window * 4,
                ).stopped_by(stop) as client:  # a stop does not wait out a silent broker
                    entered = True
                    client.timeout = _TIMEOUT_S
                    if self.protocol is aiomqtt.ProtocolVersion.V5:
                        self._spoke_mqtt5 = True
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
                if not entered and self._no_mqtt5(exc):
                    continue
                if stop.is_set():
                    log.warning(
                        "%s: stopping with %d messages spooled; they are sent at the next start",
                        self.label,
                        len(self.spool),
                    )
                    return
                refused = login_refused(exc, self._username, self._password)
                log.log(
                    logging.ERROR if refused else logging.WARNING,
                    "%s: %s; %d messages spooled; retry in %.1fs",
                    self.label,
                    refused or f"broker unreachable ({exc}; {self._host}:{self._port})",
                    len(self.spool),
                    backoff,
                )
                with contextlib.suppress(TimeoutError):  # (not 3.11's wait_for: it may lose
                    async with asyncio.timeout(backoff):  # a cancellation)
                        await stop.wait()
                backoff = min(backoff * 2, self._backoff_max)

    def _no_mqtt5(self, exc: aiomqtt.MqttError) -> bool:
        """The broker refused MQTT 5 at the connection, or did not answer it (and never did):
        speak 3.1.1 to it from now on."""
        if self.protocol is not aiomqtt.ProtocolVersion.V5:
            return False
        code = getattr(exc, "rc", None)
        value = code.value if isinstance(code, ReasonCode) else code
        refused = isinstance(exc, MqttConnectError) and value in _NO_MQTT5
        # (aiomqtt's words for no CONNACK in time; a TCP connection that timed out is not it);
        # a connection ended before the CONNACK too, unless over TLS: a broker that requires a
        # client certificate ends it so (and a 3.1.1 one answers an MQTT 5 CONNECT in TLS too)
        ended = str(exc).startswith("the broker ended the connection before its CONNACK")
        silent = not self._spoke_mqtt5 and (
            str(exc) == "Operation timed out" or (ended and self._tls is None)
        )
        if not (refused or silent):
            return False
        if silent and not self._waited_v5:  # a slow link is not a broker without MQTT 5
            self._waited_v5 = True
            log.info(
                "%s: no answer to MQTT 5 from %s:%d within %.0fs; trying again for %.0fs",
                self.label,
                self._host,
                self._port,
                _FIRST_CONNACK_S,
                self.connack_retry_s,
            )
            return True
        self.protocol = aiomqtt.ProtocolVersion.V311
        log.warning(
            "%s: the broker at %s:%d does not speak MQTT 5 (%s): using MQTT 3.1.1, whose "
            "acknowledgement does not say whether the broker took a message; a publish it "
            "refuses (its ACL) leaves the spool as if sent",
            self.label,
            self._host,
            self._port,
            exc
            if refused
            else f"no answer within {_FIRST_CONNACK_S:.0f}s, then {self.connack_retry_s:.0f}s",
        )
        return True

    def _waiting(self) -> list[str]:
        """The topics not to publish to yet: the broker refused their last publish."""
        now = asyncio.get_running_loop().time()
        return [t for t, r in self._refusals.items() if r.retry_at > now]

    def _refused(self, topic: str, reason: ReasonCode) -> None:
        """The broker refused a publish to `topic`: count it, log it once per (topic, reason),
        and pause the topic (doubling the pause at each round refused)."""
        self.counters["publish_refused"] += 1
        now = asyncio.get_running_loop().time()
        held = self._refusals.get(topic)
        if held is None:
            held = self._refusals[topic] = _Refusal(reason, now, 0.5)
        if held.retry_at <= now:  # the first refusal of this round: a longer pause
            held.pause_s = min(held.pause_s * 2, self._refused_backoff_max)
            held.retry_at = now + held.pause_s
        held.reason = reason
        held.refused += 1
        if (topic, reason.value) not in self._told:
            self._told.add((topic, reason.value))
            log.warning(
                "%s: the broker refused a publish to %s (reason code 0x%02X: %s); kept in the "
                "spool and tried again every %.0fs at most; is %s allowed to publish there "
                "(the broker's ACL)?",
                self.label,
                topic,
                reason.value,
                reason,
                self._refused_backoff_max,
                self._username or "the gateway's user",
            )

    def _taken(self, topic: str) -> None:
        """The broker took a publish to `topic`: a pause it had ends."""
        held = self._refusals.pop(topic, None)
        if held is not None:
            self._told = {c for c in self._told if c[0] != topic}
            log.warning(
                "%s: the broker takes publishes to %s again (%d refused meanwhile)",
                self.label,
                topic,
                held.refused,
            )

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """`offline` on the status topic (if any), given at most 2 s."""
        if self.status_topic:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await client.publish(self.status_topic, b"offline", qos=1, retain=True)

    async def _report_drops(self, client: UplinkClient) -> None:
        for report in self.spool.drop_reports():
            topic = self._dropped_topic(report)
            if topic in self._waiting():
                continue
            payload = orjson.dumps({"gateway": self.name, **report.to_json()})
            reason = await client.publish_acked(topic, payload)
            if reason.value >= REFUSED:  # kept, sent again later
                self._refused(topic, reason)
                continue
            self._taken(topic)
            self.spool.clear_drop_report(report)
            log.warning(
                "%s: reported %d dropped batches of %s", self.label, report.batches, report.device
            )

    async def _pump(self, client: UplinkClient, stop: asyncio.Event, drain_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if stop.is_set() and deadline is None:
                deadline = loop.time() + drain_s
            if deadline is not None and loop.time() > deadline:
                return
            waiting = self._waiting()
            items = self.spool.peek(self._window, skip=waiting)
            if not items:
                if stop.is_set():
                    return
                self._wakeup.clear()
                if self.spool.peek(1, skip=waiting) if waiting else len(self.spool):
                    continue
                # what the broker refused is tried again when its pause ends
                now = loop.time()
                retry = [r.retry_at - now for r in self._refusals.values() if r.retry_at > now]
                waker = asyncio.ensure_future(self._wakeup.wait())
                stopper = asyncio.ensure_future(stop.wait())
                gone = _connection_end(client)  # the client's own: never cancelled here
                waits: list[asyncio.Future[Any]] = [waker, stopper, gone]
                await asyncio.wait(
                    waits, timeout=min(retry, default=None), return_when=asyncio.FIRST_COMPLETED
                )
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
            reasons = await asyncio.gather(
                *(client.publish_acked(i.topic, i.payload) for i in items)
            )
            taken = []
            for item, reason in zip(items, reasons, strict=True):
                if reason.value >= REFUSED:
                    self._refused(item.topic, reason)  # kept in the spool
                    continue
                self._taken(item.topic)
                taken.append(item)
            if taken:
                self.spool.ack_many(taken)  # one transaction (one fsync) per window
                self._sent(taken)
