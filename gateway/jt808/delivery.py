"""The hub's commands delivered to the JT/T 808 server's terminals: an alarm confirmation
(0x8203) sent at once, or kept for a terminal away (`HeldConfirmations`) and sent when it
authenticates again, dropped after `hold_confirmations_s`; a reminder to the driver (0x8300)
sent or kept a while (`Reminders`). The `commands.Confirmer` of `commands.CommandListener`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gateway.jt808.confirmations import HeldConfirmations
from gateway.jt808.connection import Connection
from gateway.jt808.directory import VehicleRef
from gateway.jt808.keep import write_held
from gateway.jt808.reminders import Reminders
from telemetry.jt808.messages import Alarm

__all__ = ["Delivery"]

log = logging.getLogger("gateway.jt808.server")


class Delivery:
    """The server's delivery of commands to its terminals; its state is set up by
    `Jt808Server`."""

    by_vehicle: dict[VehicleRef, Connection]
    served: set[VehicleRef]
    held: HeldConfirmations
    reminders: Reminders
    counters: Counter[str]
    clock_ms: Callable[[], int]
    _held_file: Path | None

    def confirm_alarm(
        self, tenant: str, vehicle: str, alarm_serial: int = 0, alarm_type: int = Alarm.ACK_CLEAR
    ) -> bool:
        """Send 0x8203 to the vehicle's terminal: the platform confirms its alarms (serial 0: all
        of `alarm_type`). False when the terminal is not connected and authenticated: the
        confirmation of `alarm_type` is then kept for the vehicle (serial 0, the serial meaning
        nothing to the next connection) and sent when its terminal authenticates."""
        ref = VehicleRef(tenant, vehicle)
        conn = self.by_vehicle.get(ref)
        if conn is None or not conn.authenticated:
            if alarm_type and ref in self.served:
                self.held.hold(ref, int(alarm_type), self.clock_ms())
                write_held(self._held_file, self.held)
                self.counters["confirmations_held"] += 1
            return False
        conn.write(conn.session.confirm_alarm(alarm_serial, int(alarm_type)))
        self.counters["alarm_confirmations"] += 1
        return True

    def remind(self, tenant: str, vehicle: str, alarm_id: int, text: str, at_ms: int) -> str:
        """Send the hub's reminder of alarm `alarm_id` (asked at `at_ms`) to the vehicle's
        terminal (0x8300), or keep it a while for the terminal away; what happened
        (`Reminders.remind`)."""
        ref = VehicleRef(tenant, vehicle)
        conn = self.by_vehicle.get(ref)
        terminal = conn if conn is not None and conn.authenticated else None
        now = self.clock_ms()
        return self.reminders.remind(ref, alarm_id, text, at_ms, now, terminal, ref in self.served)

    def _send_held(self, conn: Connection, ref: VehicleRef) -> None:
        """The terminal of `ref` authenticated: send what was kept for it while it was away."""
        self.expire_confirmations()
        held = self.held.take(ref, self.clock_ms())
        if held is None:
            return
        write_held(self._held_file, self.held)
        alarm_type, age_ms = held
        conn.write(conn.session.confirm_alarm(0, alarm_type))
        self.counters["alarm_confirmations"] += 1
        self.counters["confirmations_sent_late"] += 1
        log.info(
            "jt808: %s/%s: alarm confirmation (type %#x) sent %.0fs late, at the terminal's "
            "authentication",
            ref.tenant,
            ref.vehicle,
            alarm_type,
            age_ms / 1000,
        )

    def expire_confirmations(self) -> int:
        """Drop the kept confirmations older than `hold_confirmations_s`; how many."""
        old = self.held.expire(self.clock_ms())
        if old:
            write_held(self._held_file, self.held)
        for ref in old:
            self.counters["confirmations_expired"] += 1
            log.warning(
                "jt808: %s/%s: alarm confirmation dropped, the terminal stayed away for %.0fs",
                ref.tenant,
                ref.vehicle,
                self.held.max_age_ms / 1000,
            )
        return len(old)
