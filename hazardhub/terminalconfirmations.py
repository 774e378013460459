"""The terminal confirmations of the hub: an operator's acknowledgement of a JT/T 808 terminal's
own alarm asks the gateway to confirm it to the terminal (0x8203), kept while the hub has no broker
connection and published when it is back. A concern of its own, split from `hazardhub.hub` (whose
`Hub` extends `TerminalConfirmations` and sets up every attribute declared here); the code moved as
it was and logs under `hazardhub.hub` as before.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from alerts.alarms import AlarmEvent
from alerts.vehicles.terminal import terminal_bit
from ingest.metrics import Metrics
from ingest.service import IngestService
from telemetry.jt808.messages import Alarm
from telemetry.topics import TopicLayout

__all__ = ["TerminalConfirmations"]

log = logging.getLogger("hazardhub.hub")  # the hub's logger, as before the split

# terminal confirmations kept while the hub has no broker connection (one per vehicle): past this
# many, the oldest is dropped (counted)
_MAX_KEPT_CONFIRMATIONS = 10_000
_CONFIRM_RETRY_S = 1.0


class TerminalConfirmations:
    """The terminal confirmations, a part of `Hub`, which sets up every attribute declared here."""

    ingest: IngestService
    layout: TopicLayout
    metrics: Metrics
    # terminal confirmations not published yet, (tenant, vehicle) -> alarm type mask, oldest
    # first; `_confirmations_kept` is set when one could not be published, for
    # `_republish_confirmations`
    _confirmations: dict[tuple[str, str], int]
    _confirmations_kept: asyncio.Event
    _confirmations_lock: asyncio.Lock

    async def _confirm_terminal(self, ev: AlarmEvent) -> None:
        """An operator acknowledged a terminal's own alarm: ask the JT/T 808 gateway to confirm
        it to the terminal (0x8203) through the vehicle's command topic. Without a broker
        connection the confirmation is kept (per vehicle, the alarm types ORed) and published
        when the connection is back (`_republish_confirmations`): the terminal holds the bit
        until confirmed, and the alarm, acknowledged, cannot be acknowledged again. Kept in
        memory only: a hub stopped before it is back loses it (logged at stop)."""
        bit = terminal_bit(ev.side)
        if bit is None or not (1 << bit) & Alarm.ACK_CLEAR:
            return  # a bit the terminal clears by itself (power cut ...) needs no 0x8203
        key = (ev.tenant, ev.device)
        self._confirmations[key] = self._confirmations.pop(key, 0) | 1 << bit
        if len(self._confirmations) > _MAX_KEPT_CONFIRMATIONS:  # the oldest goes
            oldest = next(iter(self._confirmations))
            del self._confirmations[oldest]
            self.metrics.inc("hazardhub_terminal_confirmations_dropped_total")
            log.warning("terminal confirmation for %s/%s dropped: too many kept", *oldest)
        if not await self._publish_confirmations():
            log.warning(
                "alarm %d: terminal confirmation kept until the hub is connected again",
                ev.alarm_id,
            )

    async def _publish_confirmations(self) -> bool:
        """Publish the terminal confirmations kept, oldest first; False when one failed (it and
        the rest stay kept, `_republish_confirmations` tries again)."""
        async with self._confirmations_lock:
            for key, kinds in list(self._confirmations.items()):
                tenant, vehicle = key
                command = {"command": "confirm_alarm", "alarm_type": kinds, "alarm_serial": 0}
                try:
                    await self.ingest.publish(
                        self.layout.vehicle_command(tenant, vehicle), orjson.dumps(command)
                    )
                except Exception as exc:
                    self.metrics.inc("hazardhub_terminal_confirmation_failures_total")
                    log.info("terminal confirmation for %s/%s not published: %s", *key, exc)
                    self._confirmations_kept.set()
                    return False
                self.metrics.inc("hazardhub_terminal_confirmations_total")
                # what was asked for the vehicle while publishing stays kept
                rest = self._confirmations.pop(key, 0) & ~kinds
                if rest:
                    self._confirmations[key] = rest
            return True

    async def _republish_confirmations(self) -> None:
        """Publish the terminal confirmations kept while the hub had no broker connection, once
        it is connected again (`IngestService.ready`); runs until cancelled."""
        while True:
            await self._confirmations_kept.wait()
            self._confirmations_kept.clear()
            await self.ingest.ready.wait()
            waiting = list(self._confirmations)
            if await self._publish_confirmations():
                if waiting:
                    log.info(
                        "terminal confirmations published now that the hub is connected: %s",
                        ", ".join(f"{t}/{v}" for t, v in waiting),
                    )
            else:  # ready, yet the connection is gone (it ends before `ready` is cleared)
                await asyncio.sleep(_CONFIRM_RETRY_S)
