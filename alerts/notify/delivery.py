"""Delivery of the notification outbox: what is due goes out, `max_in_flight` at once, rows of
a webhook with `batch_max` above 1 together in one POST. At least once: a row is marked delivered
only after its channel said so, and carries the same idempotency key on every try. Retryable
failures back off exponentially up to `retry_max_s` (or the receiver's Retry-After); a permanent
one, `give_up_after_s` of trying, or a row no channel can read makes it dead, with the reason.

This module takes the rows, queues and sends them and settles their outcomes; a row's channel,
receiver, share, slots and guard are `alerts.notify.shares`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from alerts.notify.channels import Notification, Senders, SendResult, Status
from alerts.notify.faultlog import FailingSubscriptions
from alerts.notify.netguard import AddressGuard
from alerts.notify.shares import (
    _ALL_TAKES,
    _RECEIVER_TAKES,
    _TENANT_TAKES,
    CHANNEL,
    Due,
    Shares,
    guarded_json,
)
from alerts.notify.store import NotifyStore
from telemetry.notifyconfig import ChannelSpec, NotifySettings, WebhookChannel

__all__ = ["CHANNEL", "Delivery", "guarded_json"]

log = logging.getLogger(__name__)

_ROWS_PER_SLOT = 8  # rows taken per delivery slot (batched webhooks use them)
_REFILL = 4  # a receiver's rows are taken again once a take's 1/_REFILL of them has gone
# with a receiver or tenant full, a take reads only the first takes' worth of due rows not in
# flight (a busy receiver's backlog ahead is read again by every take: 30,000 rows, 30 ms, to
# take none), and all of them again once a second of real time (a cost, not a rule: not the
# injected clock), or at once when the last such take found a whole take's worth (more wait
# behind: helper-147 saw the others held to one take a second): a receiver with room behind a
# busy one's backlog waits at most a second for its first rows, and its rows flow after
_SCAN_TAKES, _FULL_SCAN_S = 2, 1.0
Settled = tuple[int, str, int, str, int | None]  # row id, status, next due, error, delivered at


class Delivery(Shares):
    """Sends the outbox's due rows without waiting for a whole round: each receiver has a queue
    of units (a row, or rows batched into one POST) and a few workers of its own, so a receiver
    that is slow or never answers holds up only its own notifications, never another tenant's
    or channel's. Bounded: a receiver has at most a take's worth of rows (`take_limit`) queued or
    being sent (its other rows stay in the outbox, not taken, until it has room), a tenant two,
    all together eight; a tenant has at most a quarter of the sends in flight (never less than
    one receiver's): a tenant pointing many subscriptions at receivers that hang cannot take
    every slot. Outcomes are written (`settle`) by the next
    `deliver_due`; a row is taken again only once its outcome is written."""

    def __init__(
        self,
        store: NotifyStore,
        senders: Senders,
        settings: NotifySettings,
        *,
        clock: Callable[[], int],
        count: Callable[..., None],
        wake: Callable[[], None] | None = None,
        row_guarded: Callable[[str, str], bool] | None = None,
    ) -> None:
        """`wake` is called when outcomes wait to be written (`deliver_due`): a quarter of a
        take's worth of them, or a receiver's queue done."""
        self.store = store
        self._senders = senders
        self.settings = settings
        self.clock = clock
        self._count = count
        self._wake = wake
        self.failing = FailingSubscriptions(clock)  # said in the log at their first failure
        # a channel's outbox text: the channel, and whether its text says it is guarded (an
        # enterprise's) or not (the centre's); None for a bare text (a row of before the guard)
        self._channels: dict[str, tuple[ChannelSpec, bool | None]] = {}
        self._row_guarded = row_guarded  # (subscription key, row key): of an enterprise's object
        self._guard: tuple[object, AddressGuard] | None = None  # and the settings' guard
        self._receivers: dict[str, str] = {}  # a channel's text: its receiver
        self.last_taken = 0  # rows the last `deliver_due` took
        self._full_scan_at: float | None = None  # the last take with exclusions to read all due
        self._full_scan_whole = False  # and whether it found a whole take's worth
        self.last_queued = 0  # of them, the rows it queued for sending
        self._taken: set[int] = set()  # rows queued or being sent, their outcome not written
        self._tried: list[Settled] = []  # outcomes for the next `settle`
        self._queues: dict[str, deque[list[Due]]] = {}  # per receiver, its units to send
        self._rows: Counter[str] = Counter()  # per receiver, rows queued or being sent
        self._tenant_rows: Counter[str] = Counter()  # per tenant, likewise
        self._row_total = 0  # all of them
        self._workers: Counter[str] = Counter()  # per receiver, workers running
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: tuple[int, asyncio.Semaphore] | None = None  # all sends in flight
        self._tenant_slots: dict[str, tuple[int, asyncio.Semaphore]] = {}

    @property
    def take_limit(self) -> int:
        """The most rows one `deliver_due` takes."""
        return self.settings.max_in_flight * _ROWS_PER_SLOT

    @property
    def in_flight(self) -> int:
        """Rows queued or being sent whose outcome is not written yet."""
        return len(self._taken)

    async def deliver_due(self, now: int | None = None, *, wait: bool = True) -> int:
        """Write the outcomes of the sends ended so far, then queue what is due: one try per
        row, rows of a webhook with `batch_max` above 1 together in POSTs of up to that many.
        With `wait`, also wait for every send in flight and write their outcomes. Returns how
        many rows were delivered by the outcomes written."""
        delivered = await self._settle()
        now = self.clock() if now is None else now
        self.last_taken = self.last_queued = 0
        limit = self.take_limit
        # receivers and tenants with no room: their rows are not taken (no starving of the
        # others); the hub's own channels count against no tenant's or global room. A receiver
        # is taken for again once it has room for a quarter take (`_REFILL`), not for each row
        # sent: every take read a whole take's worth of its backlog to queue a few rows
        busy = {r for r, n in self._rows.items() if n > _RECEIVER_TAKES * limit - limit // _REFILL}
        full = sorted(t for t, r in self._receivers.items() if r in busy) if busy else []
        tenants = sorted(t for t, n in self._tenant_rows.items() if n >= _TENANT_TAKES * limit)
        only_local = self._row_total >= _ALL_TAKES * limit
        # all full, and no channel of the hub's own seen: nothing to take (that take reads every
        # pending row's channel, and a backlog can be large)
        if not only_local or any(self._local(t) for t in self._receivers):
            scan, reads_all = None, False
            if full or tenants or only_local:
                last, mono = self._full_scan_at, time.monotonic()
                if last is None or mono - last >= _FULL_SCAN_S or self._full_scan_whole:
                    self._full_scan_at, reads_all = mono, True
                else:
                    scan = _SCAN_TAKES * limit
            due = await asyncio.to_thread(
                self.store.take_due,
                now,
                limit,
                sorted(self._taken),
                full,
                tenants,
                only_local=only_local,
                scan=scan,
                texts=False,
            )
            self.last_taken = len(due)
            if reads_all:
                self._full_scan_whole = len(due) >= limit
            await self._queue_taken(self._units_of(due, now))
        if wait:
            while self._tasks:
                await asyncio.wait(set(self._tasks))  # not gather: a cancelled caller leaves them
            delivered += await self._settle()
        return delivered

    async def aclose(self, grace_s: float = 2.0) -> None:
        """Stop sending: the sends in flight get `grace_s` to end, the others are cancelled and
        their rows (and those still queued) stay pending for the next start; the outcomes of
        those that ended are written."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._queues.clear()
        self._rows.clear()
        self._tenant_rows.clear()
        self._row_total = 0
        await self._settle()
        self._taken.clear()

    def _units_of(self, due: list[tuple[Any, ...]], now: int) -> list[list[Due]]:
        """The rows taken as units to send; a row no channel can read is dead at once."""
        units: list[list[Due]] = []
        batches: dict[tuple[str, bool], list[Due]] = {}
        for d in due:
            row = Due(*d)
            try:
                channel = self._channel(row.channel)
            except ValidationError as exc:  # a row no channel can send: dead, with the reason
                self._count("hazardhub_notifications_dead_total", channel="unknown")
                self._tried.append((row.id, "dead", now, f"unreadable channel: {exc}"[:500], None))
                continue
            if row.arrival is None and (why := _unreadable(row.events)) is not None:
                # a row of before `arrival` (an older outbox's): its events are read first, as
                # a webhook gets them unread (those this hub writes are JSON by construction)
                self._count("hazardhub_notifications_dead_total", channel=channel.type)
                self._tried.append((row.id, "dead", now, f"unreadable events: {why}"[:500], None))
                continue
            if isinstance(channel, WebhookChannel) and channel.batch_max > 1:
                # one POST per channel and guard: an enterprise's old row and the centre's of
                # the same text never share one (the guard would refuse both)
                key = (row.channel, self._is_guarded(row))
                group = batches.setdefault(key, [])
                group.append(row)
                if len(group) >= channel.batch_max:
                    units.append(group)
                    batches[key] = []
            else:
                units.append([row])
        units.extend(g for g in batches.values() if g)
        return units

    async def _queue_taken(self, units: list[list[Due]]) -> None:
        """Queue the units of a take there is room for (`_admit`: the others' rows stay
        pending), with their subjects and events read then: a take reads rows without them, and
        often has room for a few (a receiver with a little room: its other rows of the take
        are read again by the next ones, 9 of 10 rows read in the notify bench)."""
        units = self._admit(units, self.take_limit)
        if not units:
            return
        texts = await asyncio.to_thread(self.store.texts_of, [r.id for u in units for r in u])
        filled = [
            [r._replace(subject=texts[r.id][0], events=texts[r.id][1]) for r in u if r.id in texts]
            for u in units
        ]
        self._queue([u for u in filled if u])

    def _queue(self, units: list[list[Due]]) -> None:
        """Queue units to their receivers (those with room: `_admit`) and start workers up to
        the receiver's slots."""
        for unit in self._admit(units, self.take_limit):
            receiver = self._receiver(unit[0].channel)
            tenant = self._share(unit[0])
            local = self._local(unit[0].channel)
            n = len(unit)
            self._rows[receiver] += n
            if not local:
                self._tenant_rows[tenant] += n
                self._row_total += n
            self._taken.update(r.id for r in unit)
            self._queues.setdefault(receiver, deque()).append(unit)
            self.last_queued += len(unit)
            if self._workers[receiver] < self._senders.per_receiver:
                self._workers[receiver] += 1
                task = asyncio.create_task(self._work(receiver), name=f"notify:{receiver}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _work(self, receiver: str) -> None:
        """Send a receiver's units one after the other (one of its few workers)."""
        queue = self._queues[receiver]
        try:
            while queue:
                unit = queue.popleft()
                local = self._local(unit[0].channel)
                tenant = self._share(unit[0])
                try:
                    if local:  # the hub's own: no tenant's or global slot (its workers bound it)
                        outcome = await self._try(unit)
                    else:
                        async with self._tenant_slot(tenant), self._slot():
                            outcome = await self._try(unit)
                    # appended after the send: `self._tried +=` would load the list before it,
                    # one that `_settle` may have taken and written meanwhile
                    self._tried.extend(outcome)
                    if len(self._tried) >= self.take_limit // 4 and self._wake is not None:
                        self._wake()  # outcomes enough for a write (not one per send)
                except asyncio.CancelledError:
                    self._taken.difference_update(r.id for r in unit)  # pending: tried again
                    raise
                finally:
                    n = len(unit)
                    self._rows[receiver] -= n
                    if not local:
                        self._row_total -= n
                        self._tenant_rows[tenant] -= n
                        if not self._tenant_rows[tenant]:
                            del self._tenant_rows[tenant]
        finally:
            self._workers[receiver] -= 1
            if not self._workers[receiver]:
                del self._workers[receiver]
                if not queue:
                    self._queues.pop(receiver, None)
                    self._rows.pop(receiver, None)
            if self._wake is not None:
                self._wake()  # the receiver's queue is empty: more may be taken for it

    async def _settle(self) -> int:
        """Write the outcomes gathered; returns how many rows they delivered."""
        if not self._tried:
            return 0
        tried, self._tried = self._tried, []
        try:
            await asyncio.to_thread(self.store.settle, tried)
        except BaseException:
            self._tried[:0] = tried  # written by the next one
            raise
        self._taken.difference_update(r[0] for r in tried)
        return sum(1 for _, status, *_ in tried if status == "delivered")

    async def _try(self, rows: list[Due]) -> list[Settled]:
        """One try of a row (or of a batch of rows to one webhook); a fault of ours (a row that
        cannot be read) is retried later and never keeps the other rows from being settled."""
        try:
            return await self._send(rows)
        except Exception as exc:
            log.exception(
                "notification %s could not be tried",
                self.store.sent_key(rows[0].key, rows[0].series),
            )
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

    async def _send(self, rows: list[Due]) -> list[Settled]:
        """(row id, new status, next due, error, delivered at) of each row. A webhook gets the
        events' JSON as the outbox holds it (`orjson.Fragment`, not parsed and dumped again:
        routing wrote it with orjson, and a row of before is read in `deliver_due`); the other
        channels read the events."""
        channel = self._channel(rows[0].channel)
        guard = self._guard_of(rows)
        notes = []
        webhook = isinstance(channel, WebhookChannel)
        for row in rows:
            evs = orjson.Fragment(row.events) if webhook else orjson.loads(row.events)
            key = self.store.sent_key(row.key, row.series)
            notes.append(
                Notification(
                    key=key,
                    tenant=row.tenant,
                    site=row.site,
                    subject=row.subject,
                    body={
                        "key": key,
                        "subscription": row.subscription,
                        "tenant": row.tenant,
                        "site": row.site,
                        "events": evs,
                    },
                )
            )
        if isinstance(channel, WebhookChannel) and len(notes) > 1:
            result = await self._senders.send_batch(channel, notes, guard)
        else:
            result = await self._senders.send(channel, notes[0], guard)
        now = self.clock()
        kind = channel.type
        if result.status is Status.DELIVERED:  # counted for all the rows at once
            self._count("hazardhub_notifications_delivered_total", len(rows), channel=kind)
            latency = sum(now - _arrival(r, now) for r in rows)
            self._count("hazardhub_notification_latency_ms_sum", latency, channel=kind)
            self.failing.delivered(rows[0].subscription)
            return [(r.id, "delivered", now, "", now) for r in rows]
        return [self._outcome(r, kind, result, now) for r in rows]

    def _outcome(self, row: Due, kind: str, result: SendResult, now: int) -> Settled:
        self._count("hazardhub_notification_failures_total", channel=kind)
        s = self.settings
        permanent = result.status is Status.PERMANENT
        self.failing.failed(
            row.subscription, kind, result.reason, s.give_up_after_s, permanent=permanent
        )
        if permanent or now - row.created_at > s.give_up_after_s * 1000:
            self._count("hazardhub_notifications_dead_total", channel=kind)
            log.warning(
                "notification %s dead: %s; %s, after %d attempt(s); once fixed, send it again: "
                "POST /api/v1/notifications/%d/retry",
                self.store.sent_key(row.key, row.series),
                result.reason,
                "a permanent failure, not retried"
                if permanent
                else f"still failing {s.give_up_after_s:g} s after it was made",
                row.attempts + 1,
                row.id,
            )
            return (row.id, "dead", now, result.reason, None)
        backoff = min(s.retry_initial_s * 2.0 ** min(row.attempts, 32), s.retry_max_s)
        if result.retry_after_s is not None:
            backoff = min(max(backoff, result.retry_after_s), s.retry_max_s)
        return (row.id, "pending", now + int(backoff * 1000), result.reason, None)


def _arrival(row: Due, now: int) -> int:
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
