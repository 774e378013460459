"""The JT/T 809 gateway's MQTT side for the centre's supervisions (报警督办): it subscribes to
the vehicle commands of its platforms' tenants (`{root}/{tenant}/vehicles/+/command`, QoS 1, a
persistent session: what the hub published while the gateway was away comes when it is back),
hands each `supervise_alarm` to the server's tickets (`gateway.jt809.tickets`), ignores the
other commands (the JT/T 808 gateway's: `confirm_alarm`, `remind`), and publishes the platforms'
answers (0x1401) on `{root}/{tenant}/gateways/{gateway}/supervision` (QoS 1) for the hub:

  {"supervision_id": 4711, "result": 1, "platform": "acme-gps", "plate": "苏AD1234",
   "at": 1795961102310}

and, on the same topic, what became of each ticket (a receipt the hub journals on the alarm):

  {"supervision_id": 4711, "receipt": "sent", "platform": "acme-gps", "link": "sub",
   "at": 1795961102310}

`receipt` one of sent (`link` sub or main), kept (the platform not logged in: sent at its
login), expired (its deadline passed first), dropped (more kept for the platform than it keeps),
no_platform (`platform` ""; no platform of the tenant known to serve the vehicle). An answer or
receipt waits while the broker is away (at most `max_waiting`, then the oldest is dropped,
counted `supervise_answers_dropped`; saved across a restart: `gateway.jt809.waiting`). A command
that cannot be read is counted and logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable

import aiomqtt
import orjson

from gateway.commandfeed import follow_commands
from gateway.jt809.session import Answered
from gateway.jt809.tickets import Ticket, Tickets
from telemetry.brokertls import BrokerTls
from telemetry.errors import TopicError
from telemetry.topics import TopicLayout, VehicleCommandTopic

__all__ = ["TicketListener"]

log = logging.getLogger(__name__)


class TicketListener:
    def __init__(
        self,
        tickets: Tickets,
        tenant_of: Callable[[str], str | None],
        host: str,
        port: int,
        *,
        counters: Counter[str],
        clock_ms: Callable[[], int],
        layout: TopicLayout | None = None,
        gateway: str = "jt809",
        username: str | None = None,
        password: str | None = None,
        tls: BrokerTls | None = None,
        max_waiting: int = 10_000,
    ) -> None:
        """`tenant_of(platform)`: the platform's tenant (its answers are reported there)."""
        self.tickets, self._tenant_of = tickets, tenant_of
        self.host, self.port = host, port
        self.layout = layout or TopicLayout()
        self.gateway = gateway
        self.client_id = f"hazardhub-jt809-commands-{gateway}"
        self._username, self._password, self._tls = username, password, tls
        self.counters, self.clock_ms = counters, clock_ms
        self._answers: deque[tuple[str, bytes]] = deque()
        self.changes = 0  # moves with the answers waiting (`gateway.jt809.waiting`)
        self._max = max_waiting
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()
        tickets.receipt = self.receipt

    def answer(self, a: Answered) -> None:
        """A platform's 0x1401: to the hub, on its tenant's supervision topic."""
        tenant = self._tenant_of(a.platform)
        if tenant is None:
            return
        doc = {
            "supervision_id": a.answer.supervision_id,
            "result": a.answer.result,
            "platform": a.platform,
            "plate": a.plate,
            "at": self.clock_ms(),
        }
        self._report(tenant, doc)

    def receipt(self, ticket: Ticket, outcome: str, platform: str | None, link: str | None) -> None:
        """What became of a ticket: to the hub, on its tenant's supervision topic."""
        doc = {
            "supervision_id": ticket.request.supervision_id,
            "receipt": outcome,
            "platform": platform or "",
            "link": link or "",
            "at": self.clock_ms(),
        }
        self._report(ticket.tenant, doc)

    def _report(self, tenant: str, doc: dict[str, object]) -> None:
        if len(self._answers) >= self._max:
            self._answers.popleft()
            self.counters["supervise_answers_dropped"] += 1
        topic = self.layout.gateway_supervision(tenant, self.gateway)
        self._answers.append((topic, orjson.dumps(doc)))
        self.changes += 1
        self._wake.set()

    @property
    def waiting(self) -> list[tuple[str, bytes]]:
        """The answers and receipts not yet published (topic, payload), oldest first."""
        return list(self._answers)

    def restore(self, items: list[tuple[str, bytes]]) -> None:
        """Answers and receipts waiting before a restart (`gateway.jt809.waiting`)."""
        self._answers.extend(items[-self._max :])
        self._wake.set()

    def handle(self, topic: str, payload: bytes) -> str:
        """One command; what happened (a supervision's outcome is counted by the tickets)."""
        try:
            where = self.layout.parse(topic)
            if not isinstance(where, VehicleCommandTopic):
                raise TopicError(f"{topic!r} is no vehicle's command topic")
            doc = orjson.loads(payload)
        except (TopicError, orjson.JSONDecodeError) as exc:
            log.warning("jt809: a command on %s unreadable: %s", topic, exc)
            self.counters["supervise_rejected"] += 1
            return "supervise_rejected"
        if not isinstance(doc, dict) or doc.get("command") != "supervise_alarm":
            return "ignored"  # the JT/T 808 gateway's commands
        try:
            return self.tickets.take(where.tenant, where.vehicle, doc)
        except Exception:  # our bug: one command lost, never the gateway
            log.exception("jt809: the supervision on %s could not be carried out", topic)
            return "internal_error"

    async def run(self, stop: asyncio.Event) -> None:
        await follow_commands(
            stop,
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            username=self._username,
            password=self._password,
            tls=self._tls,
            filters=[
                self.layout.tenant_vehicle_commands(t) for t in sorted(self.tickets.tenants())
            ],
            handle=self.handle,
            subscribed=self.subscribed,
            label="jt809 commands",
            log=log,
            beside=self._send,
        )

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            while self._answers:
                topic, payload = self._answers[0]
                await client.publish(topic, payload, qos=1)
                self._answers.popleft()
                self.changes += 1
                self.counters["supervise_answers_published"] += 1
            self._wake.clear()
            await self._wake.wait()
