"""The blind-area hold's bookkeeping in the JT/T 808 server: each connection's `Hold` (pure)
carried out with the event loop's timers and the uplink's spool.

A message's positions are kept aside in the spool while the connection holds, else queued;
what a hold releases (its bound, a quiet, an urgent bit, full, the connection closing) is moved
to the queue in time order. Positions handed on older than one handed on before for the vehicle
are late at the hub: counted and logged once a minute at most.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.jt808.directory import VehicleRef
from gateway.jt808.hold import HoldPolicy, Release
from gateway.jt808.limits import Quiet
from gateway.jt808.session import Publish
from gateway.jt808.uplink import PositionUplink

if TYPE_CHECKING:
    from gateway.jt808.connection import Connection

__all__ = ["Holding"]

log = logging.getLogger("gateway.jt808.server")


class Holding:
    """The holds of the server's connections, and each vehicle's newest position handed on."""

    def __init__(
        self,
        uplink: PositionUplink,
        policy: HoldPolicy,
        counters: Counter[str],
        quiet: Quiet,
        clock_ms: Callable[[], int],
        loop: Callable[[], asyncio.AbstractEventLoop],
    ) -> None:
        self.uplink = uplink
        self.policy = policy
        self.counters = counters
        self.quiet = quiet
        self.clock_ms = clock_ms
        self.loop = loop
        self._keys = itertools.count(1)
        # each vehicle's newest position handed on (its later connections' late ones counted)
        self.newest: dict[VehicleRef, int] = {}

    def next_key(self) -> str:
        """A key for one connection's held positions in the spool, unique in this process
        (what a process before left aside was released at its uplink's start)."""
        return f"c{next(self._keys)}"

    def take(self, conn: Connection, ev: Publish) -> None:
        """One message's positions: kept aside while the connection holds, else queued."""
        counters = self.counters
        counters["positions"] += len(ev.records)
        counters["messages"] += 1
        taken = conn.hold.take(ev.records, ev.source, ev.received_ms)
        if taken.opened:
            counters["hold_after_gap"] += 1
        if taken.held:
            self.uplink.hold(conn.hold_key, ev.vehicle, taken.parts, ev.received_ms)
            counters["held"] += len(taken.parts)
        else:
            self.uplink.submit(ev.vehicle, ev.records, ev.received_ms)
            self._late(conn, taken.late)
        if taken.full is not None:
            self._release(conn, ev.vehicle, taken.full)
        self._until(conn)

    def _release(self, conn: Connection, ref: VehicleRef, release: Release) -> None:
        self.uplink.release(conn.hold_key, ref, release)
        self.counters[f"hold_{release.why}"] += 1
        self.counters["reordered"] += release.reordered
        self._late(conn, release.late)

    def _late(self, conn: Connection, late: int) -> None:
        """Positions were handed on, `late` of them older than one handed on before."""
        ref, newest = conn.vehicle, conn.hold.newest
        if ref is not None and newest is not None and newest > self.newest.get(ref, newest - 1):
            self.newest[ref] = newest
        if not late:
            return
        self.counters["late_positions"] += late
        self.quiet(
            self.loop().time(),
            "late_positions",
            logging.WARNING,
            "jt808: %s (%s): %d positions older than one already handed on for the vehicle "
            "(a blind-area backlog still coming %.0fs after the hold began?): the hub stores "
            "them and judges them only within its fleet lateness window (fleet: {lateness_s}), "
            "and their red alarm bits",
            conn.peer,
            "no vehicle yet" if ref is None else f"{ref.tenant}/{ref.vehicle}",
            late,
            self.policy.live_s,
        )

    def _until(self, conn: Connection) -> None:
        """Wake up when the connection's hold is due."""
        if conn.hold_timer is not None:
            conn.hold_timer.cancel()
            conn.hold_timer = None
        end = conn.hold.deadline
        if end is not None:
            delay = max(0.0, (end - self.clock_ms()) / 1000)
            conn.hold_timer = self.loop().call_later(delay, self._due, conn)

    def _due(self, conn: Connection) -> None:
        conn.hold_timer = None
        try:
            release = conn.hold.due(self.clock_ms())
            if release is not None and conn.vehicle is not None:
                self._release(conn, conn.vehicle, release)
        except Exception:  # kept aside: handed on at the close, or at the next start
            self.counters["internal_error"] += 1
            log.exception("jt808: error handing on %s's held positions", conn.vehicle)
        self._until(conn)

    def hand_on(self, conn: Connection) -> None:
        """The connection closes: hand on what it holds now (the gateway stopping, too)."""
        if conn.hold_timer is not None:
            conn.hold_timer.cancel()
            conn.hold_timer = None
        try:
            release = conn.hold.flush()
            if release is not None and conn.vehicle is not None:
                self._release(conn, conn.vehicle, release)
        except Exception:  # kept aside in the spool: handed on at the next start
            self.counters["internal_error"] += 1
            log.exception("jt808: error handing on %s's held positions", conn.vehicle)
