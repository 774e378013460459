"""Delivery of the notification outbox: what is due goes out, `max_in_flight` at once, rows of
a webhook with `batch_max` above 1 together in one POST. At least once: a row is marked delivered
only after its channel said so, and carries the same idempotency key on every try. Retryable
failures back off exponentially up to `retry_max_s` (or the receiver's Retry-After); a permanent
one, `give_up_after_s` of trying, or a row no channel can read makes it dead, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from pydantic import TypeAdapter, ValidationError

from alerts.notify.channels import Notification, Senders, SendResult, Status
from alerts.notify.store import NotifyStore
from telemetry.notifyconfig import ChannelSpec, NotifySettings, WebhookChannel

__all__ = ["CHANNEL", "Delivery"]

log = logging.getLogger(__name__)
CHANNEL: TypeAdapter[ChannelSpec] = TypeAdapter(ChannelSpec)
_ROWS_PER_SLOT = 8  # rows taken per delivery slot (batched webhooks use them)
Settled = tuple[int, str, int, str, int | None]  # row id, status, next due, error, delivered at


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    key: str
    tenant: str
    site: str
    subscription: str
    channel: str
    subject: str
    events: str
    created_at: int
    attempts: int
    arrival: int | None  # the earliest of its events' (None: a row of before the column)


class Delivery:
    def __init__(
        self,
        store: NotifyStore,
        senders: Senders,
        settings: NotifySettings,
        *,
        clock: Callable[[], int],
        count: Callable[..., None],
    ) -> None:
        self.store = store
        self._senders = senders
        self.settings = settings
        self.clock = clock
        self._count = count
        self._channels: dict[str, ChannelSpec] = {}
        self.last_taken = 0  # rows the last `deliver_due` took

    @property
    def take_limit(self) -> int:
        """The most rows one `deliver_due` takes."""
        return self.settings.max_in_flight * _ROWS_PER_SLOT

    async def deliver_due(self, now: int | None = None) -> int:
        """Send what is due: one try per row, `max_in_flight` at once, rows of a webhook with
        `batch_max` above 1 together in POSTs of up to that many. Returns how many were
        delivered."""
        now = self.clock() if now is None else now
        due = await asyncio.to_thread(self.store.take_due, now, self.take_limit)
        self.last_taken = len(due)
        if not due:
            return 0
        units: list[list[_Due]] = []
        batches: dict[str, list[_Due]] = {}
        dead: list[Settled] = []
        for d in due:
            row = _Due(*d)
            try:
                channel = self._channel(row.channel)
            except ValidationError as exc:  # a row no channel can send: dead, with the reason
                self._count("hazardhub_notifications_dead_total", channel="unknown")
                dead.append((row.id, "dead", now, f"unreadable channel: {exc}"[:500], None))
                continue
            if row.arrival is None and (why := _unreadable(row.events)) is not None:
                # a row of before `arrival` (an older outbox's): its events are read first, as
                # a webhook gets them unread (those this hub writes are JSON by construction)
                self._count("hazardhub_notifications_dead_total", channel=channel.type)
                dead.append((row.id, "dead", now, f"unreadable events: {why}"[:500], None))
                continue
            if isinstance(channel, WebhookChannel) and channel.batch_max > 1:
                group = batches.setdefault(row.channel, [])
                group.append(row)
                if len(group) >= channel.batch_max:
                    units.append(group)
                    batches[row.channel] = []
            else:
                units.append([row])
        units.extend(g for g in batches.values() if g)
        # a few workers per receiver, each taking its receiver's units in turn (as many as the
        # channel lets go to one receiver at once), not a task per unit queued behind them
        queues: dict[str, deque[list[_Due]]] = defaultdict(deque)
        for unit in units:
            queues[self._senders.receiver_of(self._channel(unit[0].channel))].append(unit)
        slots = asyncio.Semaphore(self.settings.max_in_flight)

        async def worker(queue: deque[list[_Due]]) -> list[Settled]:
            out: list[Settled] = []
            while queue:
                unit = queue.popleft()
                async with slots:
                    out += await self._try(unit)
            return out

        workers = [
            worker(q)
            for q in queues.values()
            for _ in range(min(len(q), self._senders.per_receiver))
        ]
        results = [r for part in await asyncio.gather(*workers) for r in part]
        results += dead
        await asyncio.to_thread(self.store.settle, results)
        return sum(1 for _, status, *_ in results if status == "delivered")

    def _channel(self, text: str) -> ChannelSpec:
        channel = self._channels.get(text)
        if channel is None:
            channel = self._channels[text] = CHANNEL.validate_json(text)
        return channel

    async def _try(self, rows: list[_Due]) -> list[Settled]:
        """One try of a row (or of a batch of rows to one webhook); a fault of ours (a row that
        cannot be read) is retried later and never keeps the other rows from being settled."""
        try:
            return await self._send(rows)
        except Exception as exc:
            log.exception("notification %s could not be tried", rows[0].key)
            now = self.clock()
            later = now + int(self.settings.retry_max_s * 1000)
            give_up = self.settings.give_up_after_s * 1000
            why = f"{type(exc).__name__}: {exc}"
            return [
                (r.id, "dead", now, why, None)
                if now - r.created_at > give_up
                else (r.id, "pending", later, why, None)
                for r in rows
            ]

    async def _send(self, rows: list[_Due]) -> list[Settled]:
        """(row id, new status, next due, error, delivered at) of each row. A webhook gets the
        events' JSON as the outbox holds it (`orjson.Fragment`, not parsed and dumped again:
        routing wrote it with orjson, and a row of before is read in `deliver_due`); the other
        channels read the events."""
        channel = self._channel(rows[0].channel)
        notes = []
        webhook = isinstance(channel, WebhookChannel)
        for row in rows:
            evs = orjson.Fragment(row.events) if webhook else orjson.loads(row.events)
            notes.append(
                Notification(
                    key=row.key,
                    tenant=row.tenant,
                    site=row.site,
                    subject=row.subject,
                    body={
                        "key": row.key,
                        "subscription": row.subscription,
                        "tenant": row.tenant,
                        "site": row.site,
                        "events": evs,
                    },
                )
            )
        if isinstance(channel, WebhookChannel) and len(notes) > 1:
            result = await self._senders.send_batch(channel, notes)
        else:
            result = await self._senders.send(channel, notes[0])
        now = self.clock()
        kind = channel.type
        if result.status is Status.DELIVERED:  # counted for all the rows at once
            self._count("hazardhub_notifications_delivered_total", len(rows), channel=kind)
            latency = sum(now - _arrival(r, now) for r in rows)
            self._count("hazardhub_notification_latency_ms_sum", latency, channel=kind)
            return [(r.id, "delivered", now, "", now) for r in rows]
        return [self._outcome(r, kind, result, now) for r in rows]

    def _outcome(self, row: _Due, kind: str, result: SendResult, now: int) -> Settled:
        self._count("hazardhub_notification_failures_total", channel=kind)
        s = self.settings
        if result.status is Status.PERMANENT or now - row.created_at > s.give_up_after_s * 1000:
            self._count("hazardhub_notifications_dead_total", channel=kind)
            log.warning("notification %s dead: %s", row.key, result.reason)
            return (row.id, "dead", now, result.reason, None)
        backoff = min(s.retry_initial_s * 2.0 ** min(row.attempts, 32), s.retry_max_s)
        if result.retry_after_s is not None:
            backoff = min(max(backoff, result.retry_after_s), s.retry_max_s)
        return (row.id, "pending", now + int(backoff * 1000), result.reason, None)


def _arrival(row: _Due, now: int) -> int:
    """The earliest arrival of the row's events: its column, or (a row of before the column)
    read from its events."""
    if row.arrival is not None:
        return row.arrival
    try:
        return min((int(e.get("arrival", now)) for e in orjson.loads(row.events)), default=now)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return now


def _unreadable(events: str) -> str | None:
    """Why a row's events cannot be sent (not a JSON list of objects), or None."""
    try:
        parsed = orjson.loads(events)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    if not isinstance(parsed, list) or not all(isinstance(e, dict) for e in parsed):
        return "not a list of events"
    return None
