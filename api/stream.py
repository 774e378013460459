"""Live stream (server-sent events) of alarm transitions and readings, per caller.

Each subscriber has a bounded queue; a subscriber that does not keep up loses the oldest events,
and is told how many with a ``lagged`` event (nothing is dropped silently). What a subscriber gets
is filtered by the tenants its key may see, as the key is now: it is checked again (cheaply, see
`api.auth.KeyWatch`) before each event and at each heartbeat, an event of a tenant the key no
longer sees is not sent, and the stream ends (with an ``end`` event) once the key is revoked,
expires or leaves the configuration.

Streams are capped, per key and in all (`TooManyStreamsError`, 429 at the route): each holds a
socket and a queue, and thousands opened and never read made every tenant's events late and would
run the hub out of file descriptors. An event goes only to the streams of its tenant (and those of
every tenant): subscribers are indexed by the tenants their key sees, not visited one by one.

Alarm events follow the alarm journal (with a feed, `alerts.alarmfeed.AlarmFeed`): each handing-on
of events (`on_alarms`) reads the journal after the last id handed on and sends what it finds in
the order of its ids, each with `id:` its journal id, so that a client that reconnects with the
last id it had (`Last-Event-ID`) is sent exactly what it missed (`api.streamreplay`). The
hand-overs come out of order (an ingest batch's events are handed on after their time-series
write, an operator's comment made meanwhile at once), the journal does not. Readings and
notifications have no id of their own: they are sent without `id:` (a client's last id stays its
last alarm event's) and are not replayed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from alerts.alarmfeed import AlarmFeed
from alerts.alarms import AlarmEvent
from alerts.errors import AlarmStoreError
from alerts.notify.channels import Notification
from api.auth import Principal
from api.streamreplay import REPLAY_MAX, alarm_data, replayed
from ingest.store.base import ReadingBatch
from telemetry.quality import Quality
from telemetry.registry import Registry

__all__ = ["Broadcaster", "Subscription", "TooManyStreamsError"]

MAX_STREAMS_PER_KEY = 10  # a dashboard's tabs, a wall display or two
MAX_STREAMS = 500  # in all: far below a service's 1,024 file descriptors
_FOLLOW_AT_ONCE = 1000  # journal events read at once when following it

log = logging.getLogger(__name__)


_END = b'event: end\ndata: {"reason":"the key no longer authenticates"}\n\n'
_STOPPING = b'event: end\ndata: {"reason":"the hub is stopping"}\n\n'
_CLOSE = "\x00close"  # the kind of the item that ends a stream (`Broadcaster.close`)


class TooManyStreamsError(Exception):
    """A stream refused: its key, or the hub, has as many open as it may (the reason says
    which)."""


@dataclass(slots=True, eq=False)
class Subscription:
    principal: Principal
    queue: asyncio.Queue[tuple[str, str, bytes, int]]  # kind, tenant, data, journal id (0: none)
    lagged: int = 0
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"alarm", "reading"}))
    # the caller as its key is now (None: it no longer authenticates); None: never checked again
    recheck: Callable[[], Principal | None] | None = None
    closing: bool = False  # its stream ends with the next item: nothing more is queued
    key: str = ""  # what its key is counted by (the key's digest)
    # the tenants it is indexed under in its broadcaster (None: every tenant)
    indexed: frozenset[str] | None = frozenset()
    tiers: frozenset[str] | None = None  # alarm events of alarms that reached these (None: all)
    resume: int | None = None  # the last journal id the client had: what follows is replayed
    after: int = 0  # alarm events up to this journal id were replayed: not sent again

    def offer(
        self, kind: str, tenant: str, data: bytes, event_id: int = 0, peak_tier: str = ""
    ) -> None:
        """Queue an event; an alarm event with its journal id and its alarm's peak tier."""
        if kind not in self.kinds or not self.principal.sees(tenant) or self.closing:
            return
        if kind == "alarm" and self.tiers is not None and peak_tier not in self.tiers:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged += 1
        self.queue.put_nowait((kind, tenant, data, event_id))

    def authenticates(self) -> bool:
        """Whether the key still authenticates; `principal` becomes the key as it is now."""
        if self.recheck is None:
            return True
        principal = self.recheck()
        if principal is None:
            return False
        self.principal = principal
        return True


def _close_queue(sub: Subscription) -> None:
    """Queue the end after what waits (the oldest item, counted as lagged, makes room for it in
    a full queue); nothing is offered after it, so nothing can push it out."""
    sub.closing = True
    if sub.queue.full():
        sub.queue.get_nowait()
        sub.lagged += 1
    sub.queue.put_nowait((_CLOSE, "", b"", 0))


class Broadcaster:
    def __init__(
        self,
        registry: Registry,
        *,
        queue_size: int = 1000,
        heartbeat_s: float = 15.0,
        max_per_key: int = MAX_STREAMS_PER_KEY,
        max_total: int = MAX_STREAMS,
        feed: AlarmFeed | None = None,
        replay_max: int = REPLAY_MAX,
    ) -> None:
        """`heartbeat_s`: the most a quiet stream waits before a keep-alive, and so before its
        key is checked again. `max_per_key`, `max_total`: the streams open at once. `feed`: the
        alarm journal, which alarm events follow and resumed streams are replayed from (None:
        the events handed on are sent as they come, and nothing is replayed); `replay_max`: the
        most events one resume replays."""
        self._registry = registry
        self._queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.max_per_key = max_per_key
        self.max_total = max_total
        self._subs: set[Subscription] = set()
        self._per_key: Counter[str] = Counter()
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._everywhere: set[Subscription] = set()  # keys of every tenant
        self._closed = False  # the hub stops: every stream ends (`close`)
        self._feed = feed
        self.replay_max = replay_max
        self._following = asyncio.Lock()  # one read of the journal at a time
        # the newest journal id handed on: what comes after it is read at the next hand-over
        self._cursor = 0 if feed is None else feed.last_id()

    def set_registry(self, registry: Registry) -> None:
        """A new configuration: readings are named (and scoped) by its sensors from now on."""
        self._registry = registry

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(
        self,
        principal: Principal,
        kinds: frozenset[str],
        recheck: Callable[[], Principal | None] | None = None,
        key: str | None = None,
        *,
        tiers: frozenset[str] | None = None,
        resume: int | None = None,
    ) -> Subscription:
        """A subscriber of `kinds`; with `recheck` (the caller as its key is now, None once it no
        longer authenticates) its stream follows the key: see `events`. `key` is what the key
        is counted by (its digest; its name unless given). `tiers`: alarm events of alarms whose
        peak tier is one of these alone; `resume`: the last alarm journal id the client had,
        its stream begins with what followed (replayed; live events queue meanwhile). Raises
        `TooManyStreamsError` when the key or the hub has as many streams open as it may."""
        key = principal.name if key is None else key
        if len(self._subs) >= self.max_total:
            raise TooManyStreamsError(
                f"the hub has {len(self._subs)} live streams open, the most it keeps: try again"
                " later"
            )
        if self._per_key[key] >= self.max_per_key:
            raise TooManyStreamsError(
                f"this key has {self._per_key[key]} live streams open, the most one key may:"
                " close one (another tab, another display) first"
            )
        sub = Subscription(
            principal,
            asyncio.Queue(maxsize=self._queue_size),
            kinds=kinds,
            recheck=recheck,
            key=key,
            tiers=tiers,
            resume=resume,
        )
        self._subs.add(sub)
        self._per_key[key] += 1
        self._index(sub)
        if self._closed:
            _close_queue(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscriber (again: nothing happens)."""
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        self._per_key[sub.key] -= 1
        if not self._per_key[sub.key]:
            del self._per_key[sub.key]
        self._unindex(sub)

    def _index(self, sub: Subscription) -> None:
        tenants = sub.principal.tenants
        sub.indexed = tenants
        if tenants is None:
            self._everywhere.add(sub)
            return
        for t in tenants:
            self._by_tenant.setdefault(t, set()).add(sub)

    def _unindex(self, sub: Subscription) -> None:
        if sub.indexed is None:
            self._everywhere.discard(sub)
            return
        for t in sub.indexed:
            subs = self._by_tenant.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_tenant[t]

    def _listening(self, tenant: str) -> Iterable[Subscription]:
        """The subscribers an event of `tenant` is offered to: its own and every tenant's."""
        own = self._by_tenant.get(tenant)
        if not own:
            return self._everywhere
        if not self._everywhere:
            return own
        return (*own, *self._everywhere)

    def _authenticates(self, sub: Subscription) -> bool:
        """`sub.authenticates()`, indexed again when its key now sees other tenants (a new
        configuration)."""
        if not sub.authenticates():
            return False
        if sub.principal.tenants != sub.indexed and sub in self._subs:
            self._unindex(sub)
            self._index(sub)
        return True

    def close(self) -> None:
        """End every stream with an ``end`` event (the hub stops): a client told so reconnects
        to the next hub, and an open stream no longer holds up the API's stop until its grace
        runs out (logged as an error, with a traceback). What is queued goes first; nothing is
        queued after the end (the last flush must not push it out of a full queue), and a stream
        that starts after it ends at once."""
        self._closed = True
        for sub in list(self._subs):
            _close_queue(sub)

    async def on_alarms(self, events: Sequence[AlarmEvent]) -> None:
        """Alarm events recorded (committed to the journal): with a feed, what the journal has
        after the last id handed on goes out, in the order of its ids (these events as they were
        handed over, the others as the journal has them); without one, these events."""
        if self._feed is None:
            for ev in events:
                self._offer_alarm(ev, ev.tier)
            return
        async with self._following:
            handed = {ev.event_id: ev for ev in events if ev.event_id}
            for ev in events:
                if not ev.event_id:  # not in the journal: sent as it is, without an id
                    self._offer_alarm(ev, ev.tier)
            if not any("alarm" in sub.kinds for sub in self._subs):
                self._cursor = max([self._cursor, *handed])  # nobody to send them to
                return
            try:
                while True:
                    found = await asyncio.to_thread(
                        self._feed.follow, self._cursor, _FOLLOW_AT_ONCE
                    )
                    for f in found:
                        self._offer_alarm(handed.get(f.event.event_id, f.event), f.peak_tier)
                        self._cursor = f.event.event_id
                    if len(found) < _FOLLOW_AT_ONCE:
                        break
            except AlarmStoreError as exc:  # sent as handed on rather than not at all
                log.warning("live stream: the alarm journal could not be read: %s", exc)
                for ev in sorted(handed.values(), key=lambda e: e.event_id):
                    if ev.event_id > self._cursor:
                        self._offer_alarm(ev, ev.tier)
                        self._cursor = ev.event_id

    def _offer_alarm(self, ev: AlarmEvent, peak_tier: str) -> None:
        listening = self._listening(ev.tenant)
        if not listening:
            return
        # the names beside the ids (a vehicle's plate as `location`), as the alarm topic
        # carries them: a wall display read tanker-01 alone; and the highest tier the alarm
        # reached (a red alarm's clear, at tier none, passes a red filter)
        data = alarm_data(ev, peak_tier, self._registry)
        for sub in listening:
            sub.offer("alarm", ev.tenant, data, ev.event_id, peak_tier)

    async def on_notification(self, n: Notification) -> None:
        """A subscription's notification for the SSE channel: to the streams of its tenant."""
        data = orjson.dumps(n.body)
        for sub in self._listening(n.tenant):
            sub.offer("notification", n.tenant, data)

    def on_readings(self, batch: ReadingBatch) -> None:
        """The newest reading of each sensor in the batch (by event time)."""
        if not self._subs or not len(batch):
            return
        order = np.lexsort((batch.ts, batch.sensor))
        s = batch.sensor[order]
        last = np.ones(len(s), dtype=np.bool_)
        last[:-1] = s[1:] != s[:-1]
        idx = order[last]
        sensors = self._registry.sensors
        for i in idx.tolist():
            info = sensors[int(batch.sensor[i])]
            listening = self._listening(info.tenant)
            if not listening:
                continue
            value = float(batch.value[i])
            q = int(batch.quality[i])
            data = orjson.dumps(
                {
                    "sensor": info.id,
                    "tenant": info.tenant,
                    "site": info.site,
                    "ts": int(batch.ts[i]),
                    "value": value if math.isfinite(value) else None,
                    "quality": q,
                    "quality_name": Quality(q).name.lower(),
                }
            )
            for sub in listening:
                sub.offer("reading", info.tenant, data)

    async def events(
        self, sub: Subscription, heartbeat_s: float | None = None
    ) -> AsyncIterator[bytes]:
        """The SSE byte stream of one subscription: ends when the client goes away, or with an
        ``end`` event when its key no longer authenticates (checked before each event and each
        heartbeat; an event of a tenant the key no longer sees is left out)."""
        beat = self.heartbeat_s if heartbeat_s is None else heartbeat_s
        try:
            yield b"retry: 2000\n\n"
            if sub.resume is not None:
                async for chunk in replayed(self._feed, self._registry, sub, self.replay_max):
                    yield chunk
            while True:
                try:  # (asyncio.timeout: 3.11's wait_for may lose a cancellation: a stream
                    async with asyncio.timeout(beat):  # whose client left would go on)
                        kind, tenant, data, event_id = await sub.queue.get()
                except TimeoutError:
                    if not self._authenticates(sub):
                        yield _END
                        return
                    yield b": keep-alive\n\n"
                    continue
                if kind == _CLOSE:
                    yield _STOPPING
                    return
                if event_id and event_id <= sub.after:  # replayed already
                    continue
                if not self._authenticates(sub):
                    yield _END
                    return
                if not sub.principal.sees(tenant):
                    continue
                if sub.lagged:
                    yield b"event: lagged\ndata: " + orjson.dumps({"dropped": sub.lagged}) + b"\n\n"
                    sub.lagged = 0
                head = b"id: %d\n" % event_id if event_id else b""
                yield head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        finally:
            self.unsubscribe(sub)
