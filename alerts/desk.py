"""The operator's desk: acknowledge, shelve, comment and dispose of alarms, take sensors out of
service; and the clock's part of the lifecycle (shelves that expire, disposal deadlines that pass,
suppression by design that starts or ends).

Every change is one transaction that updates the alarm and appends an audited event (who, when,
the comment) to its journal; the journal is what the notification pipeline reads.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Sequence

from alerts.alarmevent import lifecycle_fields
from alerts.alarms import AlarmBook, AlarmEvent
from alerts.evaluate import CoreState
from alerts.lifecycle import Action, TransitionError, disposal_action, step
from alerts.statedb import AlarmRow, StateDB
from alerts.table import TIER_RANK
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry

__all__ = ["EVENT_OF", "AlarmDesk", "AlarmNotFoundError"]

# the journal's word for each action
EVENT_OF: dict[str, str] = {
    "acknowledge": "acknowledged",
    # the supervising centre's, apart from the enterprise's (`alerts.lifecycle`): an event of its
    # own, so that a subscription to `acknowledged` hears the enterprise's console, and a
    # JT/T 808 terminal's alarm is confirmed to the vehicle by the enterprise's alone
    "centre_acknowledge": "centre_acknowledged",
    "shelve": "shelved",
    "unshelve": "unshelved",
    "expire_shelve": "unshelved",
    "comment": "commented",
    "verify": "verified",
    "dispose": "disposed",
    "close": "closed",
    "submit": "submitted",
    "approve": "approved",
    "return": "returned",
    "suppress": "suppressed",
    "unsuppress": "unsuppressed",
    "remove_from_service": "out_of_service",
    "return_to_service": "in_service",
    "overdue": "overdue",
}
SYSTEM = "system"
# the steps whose meaning depends on who takes them (`disposal_action`)
_BY_STANDING = frozenset({"close", "approve", "return"})
_OPEN = "(isa_state != 'normal' OR disposal != 'closed')"


class AlarmNotFoundError(LookupError):
    """No such alarm or sensor for this caller (another tenant's is not found either)."""


class AlarmDesk:
    def __init__(
        self,
        db: StateDB,
        registry: Registry,
        book: AlarmBook,
        disposal: DisposalSpec | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._book = book
        self._disposal = disposal or DisposalSpec()

    # people -------------------------------------------------------------------------------
    def act(
        self,
        alarm_id: int,
        action: Action,
        *,
        actor: str,
        now: int,
        tenants: Sequence[str] | None = None,
        note: str = "",
        until: int | None = None,
        also: list[AlarmEvent] | None = None,
        centre: bool | None = None,
        consoles: Collection[str] | None = None,
    ) -> AlarmEvent:
        """Apply an operator's action; raise AlarmNotFoundError, TransitionError (why), or
        NotReviewerError (an approval or return by anyone but the centre). `also` gets the
        events of the point's other alarms it moved (a shelve is the point's:
        `_point_follows`). `centre`: the actor is the monitoring centre (an admin or operator
        key of every tenant; by default, a caller of every tenant): its close is its own review,
        an enterprise's close of an alarm that reached a reviewed tier is a submission for it.
        Its acknowledgement is the centre's (`centre_acknowledge`) only when `centre` says so:
        it stops the centre's own repeats and escalation steps, not the enterprise's; and, for
        an alarm of a tenant not in `consoles` (the tenants with a key of their own that may
        write; None: every tenant), it is the site's acknowledgement too (two journal events,
        the site's in `also`)."""
        with self._db.transaction() as con:
            row = self._db.alarm_in(con, alarm_id)
            if row is None or (tenants is not None and row.tenant not in tenants):
                raise AlarmNotFoundError(f"no alarm {alarm_id}")
            if action == "acknowledge" and centre:
                if consoles is not None and row.tenant not in consoles and not row.acked:
                    # the centre is the tenant's only console: its acknowledgement is the
                    # site's too (else nothing of the tenant ever returned to normal)
                    site = self._apply(con, row, "acknowledge", actor, now, note=note)
                    if also is not None:
                        also.append(site)
                    row = self._db.alarm_in(con, alarm_id)
                    assert row is not None
                    if row.centre_acked:
                        return site
                action = "centre_acknowledge"
            peak = None
            if action in _BY_STANDING:
                peak = self._peak_tier(con, row)
                action = disposal_action(
                    action,
                    centre=tenants is None if centre is None else centre,
                    review=self._disposal.reviewed(peak),
                )
            return self._apply(
                con, row, action, actor, now, note=note, until=until, also=also, peak=peak
            )

    def _peak_tier(self, con: sqlite3.Connection, row: AlarmRow) -> str:
        """The highest tier the alarm reached: its own and its journal's."""
        tiers = con.execute(
            "SELECT DISTINCT tier FROM alarm_events WHERE alarm_id = ?", (row.id,)
        ).fetchall()
        return max([row.tier, *(str(t[0]) for t in tiers)], key=lambda t: TIER_RANK.get(t, 0))

    def set_in_service(
        self,
        sensor_id: str,
        in_service: bool,
        *,
        actor: str,
        now: int,
        reason: str = "",
        tenants: Sequence[str] | None = None,
    ) -> list[AlarmEvent]:
        """Take a sensor out of service (its alarms are kept but neither notified nor to be
        acknowledged) or return it; the sensor's open alarms follow."""
        info = self._registry.sensor(sensor_id)
        if info is None or (tenants is not None and info.tenant not in tenants):
            raise AlarmNotFoundError(f"no sensor {sensor_id!r}")
        if not in_service and not reason.strip():
            raise TransitionError("taking a sensor out of service needs a reason")
        events: list[AlarmEvent] = []
        with self._db.transaction() as con:
            if self._db.out_of_service(con, sensor_id) != in_service:
                raise TransitionError(
                    f"the sensor is already {'in' if in_service else 'out of'} service"
                )
            self._db.set_out_of_service(
                con, sensor_id, info.tenant, None if in_service else actor, reason.strip(), now
            )
            action: Action = "return_to_service" if in_service else "remove_from_service"
            for row in self._db.alarms_where(con, f"sensor = ? AND {_OPEN}", (sensor_id,)):
                if row.out_of_service == (not in_service):
                    continue
                events.append(self._apply(con, row, action, actor, now, note=reason))
        return events

    # the clock ----------------------------------------------------------------------------
    def tick(self, now: int, state: CoreState | None = None) -> list[AlarmEvent]:
        """Expire shelves, mark overdue disposals, follow suppression by design."""
        events: list[AlarmEvent] = []
        with self._db.transaction() as con:
            con.execute("DELETE FROM shelves WHERE until <= ?", (now,))
            for row in self._db.alarms_where(
                con, "shelved_until IS NOT NULL AND shelved_until <= ?", (now,)
            ):
                fresh = self._db.alarm_in(con, row.id)  # a point's other alarm may have gone
                if fresh is None or fresh.shelved_until is None:
                    continue
                moved: list[AlarmEvent] = []
                events.append(self._apply(con, fresh, "expire_shelve", SYSTEM, now, also=moved))
                events.extend(moved)
            for row in self._db.alarms_where(
                con,
                "disposal_due IS NOT NULL AND disposal_due <= ? AND overdue = 0 "
                "AND disposal != 'closed'",
                (now,),
            ):
                events.append(self._apply(con, row, "overdue", SYSTEM, now))
            if state is not None:
                events.extend(self._suppression(con, now, state))
        return events

    def _suppression(self, con: sqlite3.Connection, now: int, state: CoreState) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for info in self._registry.sensors:
            if not info.suppress_when:
                continue
            want = self._book.suppressed(info, state)
            for row in self._db.alarms_where(
                con, f"sensor = ? AND suppressed = ? AND {_OPEN}", (info.id, int(not want))
            ):
                action: Action = "suppress" if want else "unsuppress"
                events.append(self._apply(con, row, action, SYSTEM, now))
        return events

    # one change ---------------------------------------------------------------------------
    def _apply(
        self,
        con: sqlite3.Connection,
        row: AlarmRow,
        action: Action,
        actor: str,
        now: int,
        *,
        note: str = "",
        until: int | None = None,
        point: bool = True,
        also: list[AlarmEvent] | None = None,
        peak: str | None = None,
    ) -> AlarmEvent:
        """One action on one alarm, journaled; with `point`, a shelve's start or end is the
        point's (`_point_follows`), else the alarm's alone (the point's other alarms). `peak`:
        the highest tier it reached (the review's deadline is that tier's)."""
        lc = step(row.lifecycle, action, now=now, until=until, note=note)
        fields = lifecycle_fields(self._disposal, row, lc, now, peak)
        key = (row.sensor, row.rule, row.side)
        if not point:
            pass
        elif action == "shelve":
            # the point up to the level the alarm reached: a raise or escalation above it ends
            # the shelve (`alerts.alarmchange`)
            self._db.set_shelf(con, key, until, actor, note.strip(), now, level=row.peak_level)
        elif action == "unshelve":
            self._db.set_shelf(con, key, None)
        elif action == "expire_shelve" and self._db.shelf_until(con, *key, now) is not None:
            point = False  # the point was shelved again since, until later: it stays
        self._db.update_alarm(con, row.id, fields)
        after = self._db.alarm_in(con, row.id)
        assert after is not None
        kind = EVENT_OF[action]
        event_id = self._db.insert_event(
            con,
            row.id,
            kind,
            now,
            now,
            after.level,
            after.level_name,
            after.tier,
            after.value,
            lc.state,
            actor=actor,
            comment=note.strip(),
        )
        if point and action in ("shelve", "unshelve", "expire_shelve"):
            moved = self._point_follows(con, row, action, actor, now, until)
            if also is not None:
                also.extend(moved)
        return AlarmEvent.of(after, kind, now, now, event_id or 0, actor, note.strip())

    def _point_follows(
        self,
        con: sqlite3.Connection,
        row: AlarmRow,
        action: Action,
        actor: str,
        now: int,
        until: int | None,
    ) -> list[AlarmEvent]:
        """A shelve is the point's (sensor, rule, side): shelving an old alarm of it shelves its
        active one too, when not above the level shelved; ending it (by hand or by the clock)
        unshelves every alarm of the point still shelved, which kept saying so (helper-93)."""
        point = "sensor = ? AND rule = ? AND side = ? AND id != ?"
        params = (row.sensor, row.rule, row.side, row.id)
        said = f"the point's shelve (alarm {row.id})"
        moved: list[AlarmEvent] = []
        if action == "shelve":
            for other in self._db.alarms_where(con, f"{point} AND state = 'active'", params):
                if other.level <= row.peak_level and other.shelved_until != until:
                    with contextlib.suppress(TransitionError):  # out of service, say
                        moved.append(
                            self._apply(
                                con,
                                other,
                                "shelve",
                                actor,
                                now,
                                note=said,
                                until=until,
                                point=False,
                            )
                        )
        else:
            shelved = f"{point} AND shelved_until IS NOT NULL"
            for other in self._db.alarms_where(con, shelved, params):
                note = f"{said} ended"
                moved.append(
                    self._apply(con, other, "unshelve", actor, now, note=note, point=False)
                )
        return moved
