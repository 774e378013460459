"""The notification pipeline from the alarm journal to the channels, through a durable outbox.

  journal (alarm_events) --route--> outbox --deliver--> webhook / e-mail / MQTT / SSE
  open unacknowledged alarms --timers--> outbox (repeats, escalation steps)

`route` reads the journal after a cursor on a snapshot of the state database, runs the stages
(`alerts.notify.stages`) and groups per subscription and site, then writes the outbox rows and
the new cursor in one short transaction of the outbox's own database (`alerts.notify.outboxdb`):
a crash before it commits routes the same events again, a crash after it loses nothing. Nothing
of the notification pipeline's writes waits for the alarm book's, nor holds it up. Delivery
(`alerts.notify.delivery`) is at least once, each notification with its idempotency key. The
outbox rows an event makes (a row of its own or an append to a group, with the event's JSON and
the subject) are made in `alerts.notify.enqueue`, what the stages do with one event in
`alerts.notify.routing`, the repeats and escalation steps of unacknowledged alarms in
`alerts.notify.timers`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from alerts.notify.channels import Senders
from alerts.notify.delivery import CHANNEL, Delivery, guarded_json
from alerts.notify.enqueue import SensorFacts
from alerts.notify.faultlog import RepeatedFailure
from alerts.notify.http import literal_refusal
from alerts.notify.netguard import AddressGuard
from alerts.notify.objects import (
    KINDS,
    NotifyCatalog,
    NotifyObjectError,
    NotifyOwnerError,
    webhook_urls,
)
from alerts.notify.outboxdb import OutboxDB, outbox_path
from alerts.notify.routing import Counter
from alerts.notify.shares import same_receiver
from alerts.notify.store import NotifyStore
from alerts.notify.timers import Timers
from alerts.statedb import StateDB
from telemetry.clock import wall_ms
from telemetry.notifyconfig import (
    ChannelSpec,
    EscalationPolicySpec,
    NotifySettings,
    SubscriptionSpec,
)
from telemetry.registry import Registry

__all__ = ["KINDS", "Counter", "Notifier", "NotifyObjectError", "NotifyOwnerError"]

log = logging.getLogger(__name__)
_ROUTE_BATCH = 500  # journal events routed at once (one snapshot, one short write)
_PRUNE_EVERY_MS = 600_000  # the outbox's old rows are looked for every 10 minutes
_GAUGE_EVERY_MS = 10_000  # the waiting notifications counted every 10 s
_PRUNE_BATCH = 10_000  # rows deleted by one short write (more: again on the next turn)


class Notifier(Timers):
    def __init__(
        self,
        db: StateDB,
        registry: Registry,
        senders: Senders,
        settings: NotifySettings | None = None,
        *,
        metrics: Counter | None = None,
        clock: Callable[[], int] = wall_ms,
        outbox: OutboxDB | None = None,
    ) -> None:
        """`outbox`: the outbox's database, started by its owner (`OutboxDB.start`); by default
        `state-outbox.db` beside the state database (`outbox_path`), opened and started here
        and closed by `close`."""
        self._db = db
        self._own_outbox = outbox is None
        self.outbox = OutboxDB(outbox_path(db.path)) if outbox is None else outbox
        self.store = NotifyStore(db, self.outbox)
        self._registry = registry
        self._facts = SensorFacts()
        self._senders = senders
        self.settings = settings or registry.config.notify
        self._metrics = metrics
        self.clock = clock
        self.wake = asyncio.Event()
        self.catalog = NotifyCatalog(db, self.store)
        self._window_end: dict[tuple[str, str, str], int] = {}
        self._window_new: dict[tuple[str, str, str], int] = {}  # opened by the routing not written
        self._timer_sent: dict[int, set[str]] = {}  # per waiting alarm, the timer keys sent
        self._timer_new: list[tuple[int, str]] = []
        self._untold = {}
        self._channel_json: dict[tuple[int, bool], tuple[ChannelSpec, str]] = {}
        self._rows: list[tuple[Any, ...]] = []  # outbox rows for the next write (`_write`)
        # group appends for it: (subscription, tenant, site, now, event, the row if it opens one)
        self._group_ops: list[tuple[str, str, str, int, dict[str, Any], tuple[Any, ...]]] = []
        # per tenant: its subscriptions (the catalog's list, replaced on every change) and the
        # ones that match each kind of event (`_matching`)
        self._matched = {}
        self._read = 0  # journal events read by the last route
        self._holds = {}
        self._held = {}
        self._released_repeats = []
        self.delivery = Delivery(
            self.store,
            senders,
            self.settings,
            clock=clock,
            count=self._count,
            wake=self.wake.set,
            row_guarded=self._row_guarded,
        )
        try:
            if self._own_outbox:
                self.outbox.start(db)
            self.seed_from_config()
            self.reload()
        except BaseException:
            self.close()
            raise
        for line in self.catalog.unknown_names(registry):  # at start too: stored by a hub of
            log.warning("%s", line)  # before, or naming what a new file removed

    def guarded_refusals(self) -> list[str]:
        """The enterprises' webhooks whose address (an IP address in the URL: names are not
        resolved here) the guard refuses, one line each: after an upgrade their notifications
        die with that reason, and the centre should hear of it once, at start."""
        guard = AddressGuard.of(self.settings.enterprise_webhook_networks)
        lines = []
        for kind in ("subscription", "escalation"):
            for tenant, spec, owner, *_ in self.catalog.owned_objects(kind, None):
                if owner != "enterprise":
                    continue
                for url in webhook_urls(spec):
                    why = literal_refusal(url, guard)
                    if why:
                        lines.append(
                            f"{kind} {spec.id!r} of {tenant} (an enterprise's): {why}; its "
                            "notifications die until the address is allowed or changed"
                        )
        return lines

    def _row_guarded(self, sub_key: str, row_key: str) -> bool:
        """Whether an outbox row's channel is an enterprise's object's: an escalation step's
        (`...:x{alarm}:{step}`) is its subscription's policy's, any other the subscription's;
        one whose object is gone is guarded. Asked at delivery only for rows whose text does
        not say it (queued by a hub of before the guard)."""
        return self.row_owner(sub_key, row_key) != "centre"

    def _row_object(
        self, sub_key: str, row_key: str
    ) -> tuple[str, SubscriptionSpec, EscalationPolicySpec | None] | None:
        """The objects an outbox row's channel comes from: its tenant, its subscription, and for
        an escalation step's row (`...:x{alarm}:{step}`) the subscription's policy (None for any
        other row); None when the subscription, or a step's policy, is gone or left."""
        tenant, _, sub_id = sub_key.partition("/")
        sub = next((s for s in self.catalog.subs.get(tenant, ()) if s.id == sub_id), None)
        if sub is None:
            return None
        if not row_key.startswith(f"{sub_key}:x"):
            return tenant, sub, None
        policy = self.catalog.policies.get((tenant, sub.escalation or ""))
        return None if policy is None else (tenant, sub, policy)

    def row_owner(self, sub_key: str, row_key: str) -> str | None:
        """Whose object an outbox row's channel is, "enterprise" or "centre" (see
        `_row_guarded`); None when the object is gone and it cannot be told."""
        found = self._row_object(sub_key, row_key)
        return None if found is None else self._owner(*found)

    def _owner(
        self, tenant: str, sub: SubscriptionSpec, policy: EscalationPolicySpec | None
    ) -> str | None:
        if policy is None:
            return self.catalog.owner_of("subscription", tenant, sub.id)
        return self.catalog.owner_of("escalation", tenant, policy.id)

    def channel_now(self, sub_key: str, row_key: str, made: str) -> str | None:
        """The outbox text of the channel an outbox row (made with the channel text `made`) is
        sent again with: its subscription's channel as configured now; for an escalation step's
        row (`...:x{alarm}:{step}`) the step's now only while it names the same receiver (the
        same URL, or the same addresses: a policy edited since may hold another contact at that
        step); guarded as its object is. None (as made): the subscription is gone or disabled,
        its policy or step gone, or the step names another receiver now."""
        found = self._row_object(sub_key, row_key)
        if found is None or not found[1].enabled:
            return None
        _, sub, policy = found
        channel: ChannelSpec = sub.channel
        if policy is not None:
            step = row_key.rpartition(":")[2]
            if not step.isdigit() or int(step) >= len(policy.steps):
                return None
            channel = policy.steps[int(step)].channel
            if not same_receiver(channel, made):
                return None
        return guarded_json(CHANNEL.dump_json(channel).decode(), self._owner(*found) != "centre")

    def close(self) -> None:
        """Close the outbox's database if this notifier opened it."""
        if self._own_outbox:
            self.outbox.close()

    def set_registry(self, registry: Registry) -> None:
        """A new configuration (a hot reload): its notification settings, and its
        subscriptions, policies and silences replace the old configuration's. The SMTP server
        is read at start only."""
        self._registry = registry
        self.settings = registry.config.notify
        self.delivery.settings = self.settings
        self.seed_from_config()
        self.reload()
        for line in self.catalog.unknown_names(registry):
            log.warning("%s", line)
        self.wake.set()

    # the objects: subscriptions, escalation policies, silences (alerts.notify.objects) ------
    def seed_from_config(self) -> None:
        self.catalog.seed_from_config(self._registry, self.clock())

    def reload(self) -> None:
        self.catalog.reload()

    def objects(self, kind: str, tenants: Sequence[str] | None) -> list[tuple[str, Any]]:
        """(tenant, spec) of one kind, for the tenants given (None: all)."""
        return self.catalog.objects(kind, tenants)

    def owned_objects(
        self, kind: str, tenants: Sequence[str] | None
    ) -> list[tuple[str, Any, str, str, int]]:
        """(tenant, spec, owner, actor, updated_at) of one kind (`NotifyCatalog`)."""
        return self.catalog.owned_objects(kind, tenants)

    def put(self, kind: str, tenant: str, spec: Any, actor: str, *, owner: str = "centre") -> None:
        self.catalog.put(self._registry, kind, tenant, spec, actor, self.clock(), owner=owner)

    def delete(self, kind: str, tenant: str, object_id: str, *, owner: str = "centre") -> bool:
        return self.catalog.delete(kind, tenant, object_id, owner=owner)

    # routing (the stages: alerts.notify.routing) --------------------------------------------
    def route(self, now: int | None = None) -> int:
        """Route the journal's new events to the outbox; returns the rows written or grown.

        The events and the inhibition context are read on a snapshot and routed without the
        state database's lock; only the outbox rows and the cursor are written, in the outbox's
        own database, after a check that the cursor has not moved (another router's rows would
        stand)."""
        now = self.clock() if now is None else now
        cursor = self.store.cursor_now("route")
        with self._db.snapshot() as ro:
            events = self.store.journal_after(ro, cursor, _ROUTE_BATCH)
            self._read = len(events)
            if not events:
                return 0
            views = [self._view(e) for e in events]
            self._held = self.outbox.holds_of({v.alarm_id for v in views})
            freed = self._freed(ro, views)
            sensors = {v.sensor for v in views} | {v.sensor for v, _, _, _ in freed}
            active, down = self.store.inhibition_context(ro, sensors)
        # the windows these events open count once their rows are written: routed again after a
        # failed write (or a moved cursor), the first of a window still goes at once
        self._rows, self._group_ops, self._window_new = [], [], {}
        self._holds, self._released_repeats = {}, []
        made = 0
        for view, raw in zip(views, events, strict=True):
            made += self._route_one(view, raw, active, down, now)
        made += self._release(freed, active, down, now)
        with self.outbox.transaction() as con:
            if self.store.cursor(con, "route") != cursor:
                self._read = 0
                return 0
            made += self._write(con)
            self.store.set_cursor(con, "route", events[-1]["event_id"])
            self.outbox.see_alarms(con, (int(e["alarm_id"]) for e in events))
            self.outbox.unhold(con, [k for k, h in self._holds.items() if h is None])
            self.outbox.hold(con, [(*k, h) for k, h in self._holds.items() if h is not None])
            repeats = self.outbox.claim_timer_keys(con, self._released_repeats)
        self._window_end.update(self._window_new)
        for alarm, key in self._released_repeats:
            if key in repeats:
                self._timer_sent.setdefault(alarm, set()).add(key)
        return made

    def prune(self, now: int | None = None) -> int:
        """Delete delivered and dead notifications older than `outbox_keep_days` (at most
        `_PRUNE_BATCH`), the timer keys of alarms no longer waiting (active and not
        acknowledged: shelved ones too, their steps must not come again when they return), and
        the holds of alarms no longer active; returns how many notifications."""
        now = self.clock() if now is None else now
        keep_ms = int(self.settings.outbox_keep_days * 86_400_000)
        rows = self._db.query(
            "SELECT id, acked = 0 OR centre_acked = 0 FROM alarms WHERE state = 'active'"
        )
        waiting = {int(r[0]) for r in rows if r[1]}
        self.outbox.forget_timer_keys(waiting, {int(r[0]) for r in rows})
        gone = self.store.prune(now - keep_ms, _PRUNE_BATCH)
        if gone:
            self._count("hazardhub_notifications_pruned_total", gone)
            log.info(
                "notification outbox: %d rows older than %g days deleted",
                gone,
                self.settings.outbox_keep_days,
            )
        return gone

    # delivery -----------------------------------------------------------------------------
    async def deliver_due(self, now: int | None = None, *, wait: bool = True) -> int:
        """Send what is due (`alerts.notify.delivery`); returns how many were delivered (with
        `wait`, every send in flight is waited for; without, those ended so far count)."""
        return await self.delivery.deliver_due(now, wait=wait)

    async def run(self, stop: asyncio.Event, period_s: float = 0.5) -> None:
        """Route, run the timers and deliver until `stop`; woken at once by `wake`. Routing and
        delivery take turns a batch at a time, so that a backlog on one side never starves the
        other; the timers run once a second, and the outbox's old rows are deleted (`prune`) every
        10 minutes. Delivery does not wait for its sends (a slow receiver holds up only its own
        notifications); at `stop` the sends in flight get a moment to end."""
        try:
            await self._run(stop, period_s)
        finally:
            await self.delivery.aclose()

    async def _run(self, stop: asyncio.Event, period_s: float) -> None:
        timers_at = pruned_at = gauged_at = 0
        step = RepeatedFailure("notification pipeline step", self.clock)
        while not stop.is_set():
            self.wake.clear()
            busy = False
            try:
                routed, made = await asyncio.to_thread(self._route_some)
                if self.clock() - timers_at >= 1000:
                    timers_at = self.clock()
                    made += await asyncio.to_thread(self.timers)
                if self.clock() - pruned_at >= _PRUNE_EVERY_MS:
                    pruned_at = self.clock()
                    try:  # of its own: a failure here must not keep delivery waiting
                        if await asyncio.to_thread(self.prune) >= _PRUNE_BATCH:
                            pruned_at = 0  # a full batch: more is left, for the next turn
                    except Exception:
                        log.exception("pruning the notification outbox failed; tried again later")
                await self._deliver_turn(made)
                if self.clock() - gauged_at >= _GAUGE_EVERY_MS:
                    gauged_at = self.clock()
                    await asyncio.to_thread(self.gauge_pending)
                # again at once while routing reads or a take was full (not after outcomes
                # only, nor after a few rows: delivery wakes the loop when enough outcomes wait)
                taken = self.delivery.last_taken
                busy = routed > 0 or taken >= self.delivery.take_limit
                step.worked()
            except Exception as exc:  # a full disk: said once, then once a minute
                step.failed(exc)
            if busy:
                await asyncio.sleep(0)
                continue
            waker = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waker, stopper}, timeout=period_s, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            stopper.cancel()

    def gauge_pending(self) -> None:
        """The notifications waiting (`hazardhub_notifications_pending`) and the age of the
        oldest (`hazardhub_notifications_oldest_pending_seconds`, 0: none): a receiver failing
        shows here long before its notifications are given up (a day by default)."""
        if self._metrics is None:
            return
        count, oldest = self.store.pending_summary()
        age = 0.0 if oldest is None else max(0, self.clock() - oldest) / 1000
        self._metrics.set("hazardhub_notifications_pending", count)
        self._metrics.set("hazardhub_notifications_oldest_pending_seconds", age)

    def _route_some(self) -> tuple[int, int]:
        """Route one batch: how many journal events it read (0: nothing new) and how many
        outbox rows it made or grew."""
        made = self.route()
        return self._read, made

    async def _deliver_turn(self, made: int) -> int:
        """Delivery's turn: at least as many rows as routing just made while there are more
        due and room to send them, so that a busy journal never lets the outbox fall behind (a
        take is capped, and one route can make more rows than one take holds). Returns the rows
        whose delivery was written."""
        delivery = self.delivery
        sent = await delivery.deliver_due(wait=False)
        queued = delivery.last_queued
        while queued < made and delivery.last_taken >= delivery.take_limit and delivery.last_queued:
            sent += await delivery.deliver_due(wait=False)
            queued += delivery.last_queued
        return sent
