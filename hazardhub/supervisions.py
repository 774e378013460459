"""The centre's alarm supervisions (报警督办) on their way to the vehicle gateways: the route
(`api.alarmsupervise`) journals the act and hands the `supervise_alarm` command here, which
publishes it on the vehicle's command topic (QoS 1). Without a broker connection it is kept (at
most `max_kept`, in memory: a hub stopped meanwhile loses it, said at its stop) and published
once the hub is connected again, until the supervision's deadline (then dropped: the ticket is
over). With `max_kept` kept already, it is neither: `CommandNotSentError` (the route answers 503
and journals it). Counted in `hazardhub_alarm_supervisions_total{outcome}`: published, kept,
expired, full."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.context import CommandNotSentError
from telemetry.clock import wall_ms

__all__ = ["SUPERVISIONS_METRIC", "SupervisionOutbox"]

log = logging.getLogger(__name__)

SUPERVISIONS_METRIC = "hazardhub_alarm_supervisions_total"


@dataclass(frozen=True, slots=True)
class _Kept:
    topic: str
    payload: bytes
    until: int  # the supervision's deadline (ms): not published after it


class SupervisionOutbox:
    def __init__(
        self,
        publish: Callable[[str, bytes], Awaitable[None]],
        connected: asyncio.Event,
        count: Callable[[str], None],
        *,
        max_kept: int = 10_000,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        """`publish`: QoS 1 on the hub's connection, raising while there is none;
        `connected`: set while there is one; `count(outcome)`: the metric."""
        self._publish, self._connected, self._count = publish, connected, count
        self._max, self.clock_ms = max_kept, clock_ms
        self._kept: deque[_Kept] = deque()
        self._wake = asyncio.Event()

    async def send(self, topic: str, payload: bytes, until: int) -> bool:
        """Publish now (True), or keep it until the hub is connected again (False); with
        `max_kept` kept already, CommandNotSentError."""
        if not self._kept:
            try:
                await self._publish(topic, payload)
            except Exception as exc:  # no broker connection: kept
                log.info("alarm supervision on %s kept: %s", topic, exc)
            else:
                self._count("published")
                return True
        if len(self._kept) >= self._max:
            self._count("full")
            log.warning("alarm supervision on %s not sent: %d kept already", topic, self._max)
            raise CommandNotSentError(
                f"the hub is not connected to the broker and holds {self._max} supervisions "
                "not yet published already"
            )
        self._kept.append(_Kept(topic, payload, until))
        self._count("kept")
        self._wake.set()
        return False

    @property
    def kept(self) -> int:
        return len(self._kept)

    async def run(self) -> None:
        """Publish what is kept, oldest first, until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._kept:
                    item = self._kept[0]
                    if item.until <= self.clock_ms():
                        self._kept.popleft()
                        self._count("expired")
                        log.warning(
                            "alarm supervision on %s dropped: past its deadline", item.topic
                        )
                        continue
                    try:
                        await self._publish(item.topic, item.payload)
                    except Exception as exc:
                        log.debug("alarm supervision on %s not published yet: %s", item.topic, exc)
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):
                                await self._connected.wait()
                        await asyncio.sleep(0.2)
                        continue
                    self._kept.popleft()
                    self._count("published")
        finally:
            if self._kept:
                log.warning(
                    "%d alarm supervisions not published at the stop: lost (督办 them again)",
                    len(self._kept),
                )
