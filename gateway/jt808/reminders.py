"""Reminders to drivers (JT/T 808 0x8300, shown and read aloud by the terminal), from the hub's
``remind`` commands: sent at once to the vehicle's connected terminal; for a terminal away, kept
a short while (`max_age_ms`, a minute by default: a reminder heard an hour late is wrong) and
sent if it authenticates within it, else dropped and counted. Never queued without bound: at
most `per_vehicle` wait per vehicle (the oldest go) and `max_total` in all.

The hub publishes with QoS 1, so a reminder may come twice: the alarm ids taken in the last
while are remembered, and a repeat sends nothing (idempotent). The terminal's general response
(0x0001) to a 0x8300 is counted by its result: ``reminders_ok``, ``reminders_failed``,
``reminders_bad`` (message error), ``reminders_unsupported``.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

from gateway.jt808.directory import VehicleRef
from gateway.jt808.limits import Quiet
from gateway.jt808.session import Session
from telemetry.jt808.messages import TerminalResponse

__all__ = ["Reminders"]

log = logging.getLogger("gateway.jt808.server")

_RESULTS = {0: "ok", 1: "failed", 2: "bad", 3: "unsupported"}


class _Terminal(Protocol):
    session: Session

    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class _Waiting:
    alarm_id: int
    text: str
    at: int  # when the gateway received it (its own clock, ms)


class Reminders:
    """The reminders of one server: those waiting for their terminal, and the ids taken."""

    def __init__(
        self,
        counters: Counter[str],
        quiet: Quiet,
        max_age_ms: int = 60_000,
        *,
        per_vehicle: int = 4,
        max_total: int = 10_000,
        remember: int = 100_000,
    ) -> None:
        self.counters = counters
        self.quiet = quiet
        self.max_age_ms = max_age_ms
        self.per_vehicle, self.max_total, self.remember = per_vehicle, max_total, remember
        self._waiting: dict[VehicleRef, deque[_Waiting]] = {}
        self._total = 0
        self._taken: OrderedDict[tuple[VehicleRef, int], int] = OrderedDict()

    def __len__(self) -> int:
        return self._total

    def remind(
        self,
        ref: VehicleRef,
        alarm_id: int,
        text: str,
        at_ms: int,
        now_ms: int,
        terminal: _Terminal | None,
        served: bool,
    ) -> str:
        """One reminder of the hub: sent to `terminal` (connected and authenticated), else
        kept for the vehicle a while if its terminal was `served` here. What happened: sent,
        kept, repeat, stale (asked longer ago than `max_age_ms`: the broker held it while the
        gateway was away), not_here (a vehicle whose terminal never came here), dropped (`max_total`
        wait, none of this vehicle's to drop instead).

        `at_ms` is the hub's clock, compared with the gateway's for `stale` only (the hosts'
        clocks must agree to well within `max_age_ms`: NTP); an `at_ms` in the gateway's future
        is taken as now and counted (``reminders_clock_ahead``). How long a reminder waits is
        measured on the gateway's clock from when it came, whatever the hub's."""
        self._forget_taken(now_ms)
        key = (ref, alarm_id)
        if key in self._taken:
            self.counters["reminders_repeated"] += 1
            return "repeat"
        self._taken[key] = now_ms
        if len(self._taken) > self.remember:
            self._taken.popitem(last=False)
        if at_ms > now_ms:  # the hub's clock ahead of ours
            self.counters["reminders_clock_ahead"] += 1
            self.quiet(
                now_ms / 1000,
                "reminders_clock_ahead",
                logging.WARNING,
                "jt808: a driver reminder asked %.0fs in the future: the hub's clock is ahead"
                " of this host's (synchronise both with NTP)",
                (at_ms - now_ms) / 1000,
            )
            at_ms = now_ms
        if now_ms - at_ms > self.max_age_ms:
            self.counters["reminders_stale"] += 1
            return "stale"
        if terminal is not None:
            self._send(terminal, text)
            return "sent"
        if not served:
            self.counters["reminders_not_here"] += 1
            return "not_here"
        if self._total >= self.max_total and not self._waiting.get(ref):
            self.counters["reminders_dropped"] += 1  # full, and nothing older of the vehicle
            return "dropped"
        waiting = self._waiting.setdefault(ref, deque())
        waiting.append(_Waiting(alarm_id, text, now_ms))
        self._total += 1
        self.counters["reminders_kept"] += 1
        if len(waiting) > self.per_vehicle or self._total > self.max_total:
            waiting.popleft()  # the vehicle's oldest goes
            self._total -= 1
            self.counters["reminders_dropped"] += 1
        return "kept"

    def authenticated(self, ref: VehicleRef, terminal: _Terminal, now_ms: int) -> int:
        """The vehicle's terminal authenticated: send what waits for it (in time); how many."""
        self.expire(now_ms)
        waiting = self._waiting.pop(ref, None)
        if not waiting:
            return 0
        self._total -= len(waiting)
        for reminder in waiting:
            self._send(terminal, reminder.text)
            self.counters["reminders_sent_late"] += 1
        return len(waiting)

    def expire(self, now_ms: int) -> int:
        """Drop what waited longer than `max_age_ms`; how many."""
        dropped = 0
        for ref in list(self._waiting):
            waiting = self._waiting[ref]
            while waiting and now_ms - waiting[0].at > self.max_age_ms:
                waiting.popleft()
                dropped += 1
                self.quiet(
                    now_ms / 1000,
                    "reminders_expired",
                    logging.INFO,
                    "jt808: %s/%s: a driver reminder dropped, the terminal was away for %.0fs",
                    ref.tenant,
                    ref.vehicle,
                    self.max_age_ms / 1000,
                )
            if not waiting:
                del self._waiting[ref]
        if dropped:
            self._total -= dropped
            self.counters["reminders_expired"] += dropped
        return dropped

    def answered(self, response: TerminalResponse) -> None:
        """The terminal's general response to a 0x8300."""
        self.counters[f"reminders_{_RESULTS.get(response.result, 'bad')}"] += 1

    def _send(self, terminal: _Terminal, text: str) -> None:
        terminal.write(terminal.session.remind(text))
        self.counters["reminders_sent"] += 1

    def _forget_taken(self, now_ms: int) -> None:
        """Ids older than twice the age a reminder is kept cannot come again in time."""
        taken = self._taken
        while taken:
            key, at = next(iter(taken.items()))
            if now_ms - at <= 2 * self.max_age_ms:
                break
            del taken[key]
