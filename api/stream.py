"""Live stream (server-sent events) of alarm transitions and readings, per caller.

Each subscriber has a bounded queue; a subscriber that does not keep up loses the oldest events,
and is told how many with a ``lagged`` event (nothing is dropped silently). What a subscriber gets
is filtered by the tenants its key may see.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from alerts.alarms import AlarmEvent
from alerts.notify.channels import Notification
from api.auth import Principal
from ingest.store.base import ReadingBatch
from telemetry.quality import Quality
from telemetry.registry import Registry

__all__ = ["Broadcaster", "Subscription"]


@dataclass(slots=True, eq=False)
class Subscription:
    principal: Principal
    queue: asyncio.Queue[tuple[str, bytes]]
    lagged: int = 0
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"alarm", "reading"}))

    def offer(self, kind: str, data: bytes) -> None:
        if kind not in self.kinds:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.lagged += 1
        self.queue.put_nowait((kind, data))


class Broadcaster:
    def __init__(self, registry: Registry, *, queue_size: int = 1000) -> None:
        self._registry = registry
        self._queue_size = queue_size
        self._subs: set[Subscription] = set()

    def set_registry(self, registry: Registry) -> None:
        """A new configuration: readings are named (and scoped) by its sensors from now on."""
        self._registry = registry

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, principal: Principal, kinds: frozenset[str]) -> Subscription:
        sub = Subscription(principal, asyncio.Queue(maxsize=self._queue_size), kinds=kinds)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    async def on_alarms(self, events: Sequence[AlarmEvent]) -> None:
        for ev in events:
            data = orjson.dumps(ev.to_json())
            for sub in self._subs:
                if sub.principal.sees(ev.tenant):
                    sub.offer("alarm", data)

    async def on_notification(self, n: Notification) -> None:
        """A subscription's notification for the SSE channel: to the streams of its tenant."""
        data = orjson.dumps(n.body)
        for sub in self._subs:
            if sub.principal.sees(n.tenant):
                sub.offer("notification", data)

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
            for sub in self._subs:
                if sub.principal.sees(info.tenant):
                    sub.offer("reading", data)

    async def events(self, sub: Subscription, heartbeat_s: float = 15.0) -> AsyncIterator[bytes]:
        """The SSE byte stream of one subscription (ends when the client goes away)."""
        try:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    kind, data = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat_s)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if sub.lagged:
                    yield b"event: lagged\ndata: " + orjson.dumps({"dropped": sub.lagged}) + b"\n\n"
                    sub.lagged = 0
                yield b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        finally:
            self.unsubscribe(sub)
