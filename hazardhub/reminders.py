"""Reminders to drivers: when the hub raises a vehicle alarm of a kind the carrier chose
(`remind:` of the vehicle's class in `fleet:`, or of the vehicle), it asks the JT/T 808 gateway
to send the text to the vehicle's terminal (0x8300: shown and read aloud), so that the driver
hears "您已超速，请减速行驶" within seconds.

Once per raise (not on an escalation, not on the clear), on the vehicle's command topic (QoS 1)
the gateway subscribes to:

  {"command": "remind", "alarm_id": 17, "kind": "overspeed", "text": "您已超速，请减速行驶",
   "ts": 1795961100000, "at": 1795961102310}

`ts` is the raise's event time, `at` the hub's clock when it asked. A reminder is only worth
hearing while the alarm is news: one whose raise was judged more than `within_s` after its
event time (a blind-area backlog) is not sent (``late``); one the hub could not publish within
`within_s` of asking (no broker) is dropped (``expired``); the gateway drops one that reaches it,
or waits for its terminal, longer than that after `at`. Never queued without bound: at most
`max_waiting` wait here (more: ``full``). Counted in `hazardhub_driver_reminders_total{outcome}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from alerts.alarmevent import AlarmEvent
from telemetry.clock import wall_ms
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = ["REMINDERS_METRIC", "DriverReminders"]

log = logging.getLogger(__name__)

REMINDERS_METRIC = "hazardhub_driver_reminders_total"
_VEHICLES = "vehicles"  # the site of every vehicle alarm


@dataclass(frozen=True, slots=True)
class _Reminder:
    topic: str
    payload: bytes
    at: int  # the hub's clock when it was asked for (ms)


class DriverReminders:
    """Picks the raises to remind of (`on_alarms`, a dispatcher listener: never waits) and
    publishes them (`run`, a task of the hub's group)."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        publish: Callable[[str, bytes], Awaitable[None]],
        connected: asyncio.Event,
        count: Callable[[str], None],
        *,
        layout: TopicLayout | None = None,
        within_s: float = 60.0,
        max_waiting: int = 1000,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        """`registry`: the running configuration (it may change); `publish`: QoS 1 on the hub's
        broker connection, raising while there is none; `connected`: set while there is one;
        `count(outcome)`: the metric."""
        self._registry, self._publish, self._connected = registry, publish, connected
        self._count = count
        self.layout = layout or TopicLayout()
        self.within_ms = int(within_s * 1000)
        self.clock_ms = clock_ms
        self._waiting: deque[_Reminder] = deque()
        self._max = max_waiting
        self._wake = asyncio.Event()

    def text(self, ev: AlarmEvent) -> str | None:
        """What the driver hears of this event: a raise of a vehicle alarm of a kind its
        configuration reminds of; else None."""
        if ev.kind != "raised" or ev.site != _VEHICLES:
            return None
        registry = self._registry()
        vehicle = registry.vehicles.get((ev.tenant, ev.device))
        if vehicle is None:
            return None
        spec = vehicle.spec
        return registry.config.fleet.reminder(spec.vehicle_class, spec.remind, ev.side)

    async def on_alarms(self, events: Sequence[AlarmEvent]) -> None:
        # an alarm raised and cleared in the same batch (a backlog's overspeed, both ends late)
        # is over: the driver is not told of it
        ended = {ev.alarm_id for ev in events if ev.kind == "cleared"}
        for ev in events:
            text = self.text(ev)
            if text is None:
                continue
            if ev.alarm_id in ended:
                log.debug(
                    "alarm %d (%s): no reminder, cleared with its raise", ev.alarm_id, ev.side
                )
                continue
            now = self.clock_ms()
            if ev.arrival - ev.ts > self.within_ms:
                self._count("late")
                log.info(
                    "alarm %d (%s of %s/%s): no reminder, judged %.0fs after it happened",
                    ev.alarm_id,
                    ev.side,
                    ev.tenant,
                    ev.device,
                    (ev.arrival - ev.ts) / 1000,
                )
                continue
            if len(self._waiting) >= self._max:
                self._count("full")
                continue
            command = {
                "command": "remind",
                "alarm_id": ev.alarm_id,
                "kind": ev.side,
                "text": text,
                "ts": ev.ts,
                "at": now,
            }
            topic = self.layout.vehicle_command(ev.tenant, ev.device)
            self._waiting.append(_Reminder(topic, orjson.dumps(command), now))
            self._wake.set()

    async def run(self) -> None:
        """Publish what waits, oldest first, until cancelled; what cannot be published in time
        is dropped."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                reminder = self._waiting[0]
                left_ms = reminder.at + self.within_ms - self.clock_ms()
                if left_ms <= 0:
                    self._waiting.popleft()
                    self._count("expired")
                    log.warning("driver reminder on %s dropped: no broker", reminder.topic)
                    continue
                try:
                    await self._publish(reminder.topic, reminder.payload)
                except Exception as exc:  # no broker connection: wait for it, in time
                    log.debug("driver reminder on %s not published yet: %s", reminder.topic, exc)
                    # (asyncio.timeout: 3.11's wait_for may lose the hub's cancellation)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(left_ms / 1000, 1.0)):
                            await self._connected.wait()
                    await asyncio.sleep(0.2)
                    continue
                self._waiting.popleft()
                self._count("published")
