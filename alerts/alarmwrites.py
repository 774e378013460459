"""The alarm lifecycle's statements inside a transaction of the state database: the alarm book
and the desk read and write alarms, journal events, shelves and sensors out of service through
these, on the connection `StateDB.transaction` gives them. A part of `alerts.statedb` (which
extends `AlarmStatements`), apart so that each module keeps to one concern."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from alerts.alarmrows import (
    ALARM_COLS,
    ALARM_COLUMNS,
    EVENT_COLS,
    MUTABLE,
    AlarmRow,
    Shelf,
    chunks_in,
)

__all__ = ["AlarmStatements"]

_MUTABLE_AT = tuple(ALARM_COLUMNS.index(c) for c in MUTABLE)
_INSERT_ALARMS = f"INSERT INTO alarms ({ALARM_COLS}) VALUES ({','.join('?' * len(ALARM_COLUMNS))})"
_UPDATE_ALARMS = f"UPDATE alarms SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?"
_INSERT_EVENTS = (
    f"INSERT OR IGNORE INTO alarm_events ({EVENT_COLS}) "
    f"VALUES ({','.join('?' * len(EVENT_COLS.split(',')))})"
)


class AlarmStatements:
    """The statements of the lifecycle; each takes the open transaction's connection."""

    def alarm_in(self, con: sqlite3.Connection, alarm_id: int) -> AlarmRow | None:
        row = con.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        return AlarmRow(*row) if row else None

    def alarms_where(
        self, con: sqlite3.Connection, clause: str, params: Sequence[Any] = ()
    ) -> list[AlarmRow]:
        """Alarms by a condition written in this package (never from user text)."""
        rows = con.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE {clause}", params).fetchall()
        return [AlarmRow(*r) for r in rows]

    def active_for(self, con: sqlite3.Connection, sensors: set[str]) -> list[AlarmRow]:
        """The active alarms of these sensors."""
        return [AlarmRow(*r) for r in self.active_rows(con, sensors)]

    def active_rows(self, con: sqlite3.Connection, sensors: set[str]) -> list[list[Any]]:
        """The active alarms of these sensors as lists of values (`ALARM_COLUMNS`): what the
        alarm book changes in place and writes back with `write_alarms`."""
        out: list[list[Any]] = []
        for chunk, marks in chunks_in(sorted(sensors)):
            rows = con.execute(
                f"SELECT {ALARM_COLS} FROM alarms WHERE state = 'active' AND sensor IN ({marks})",
                chunk,
            ).fetchall()
            out.extend(list(r) for r in rows)
        return out

    @staticmethod
    def next_ids(con: sqlite3.Connection) -> tuple[int, int]:
        """The ids the next alarm and the next journal event get (AUTOINCREMENT: above any id
        ever given), so that a batch can name its rows before writing them together."""
        row = con.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM alarms), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'alarms'), "
            "(SELECT COALESCE(MAX(id), 0) FROM alarm_events), "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'alarm_events')"
        ).fetchone()
        return max(row[0], row[1] or 0) + 1, max(row[2], row[3] or 0) + 1

    @staticmethod
    def write_alarms(
        con: sqlite3.Connection,
        changed: Sequence[Sequence[Any]],
        new: Sequence[Sequence[Any]],
        events: Sequence[Sequence[Any]],
    ) -> set[int]:
        """Write a batch: the changed columns of alarms that were there (first, so that a clear
        makes room for the point's next active alarm), the new alarms, then their journal
        events (`EVENT_COLS`, ids from `next_ids`); a process event already recorded (a retried
        batch) is skipped. Returns the ids of the events skipped."""
        if changed:
            con.executemany(_UPDATE_ALARMS, [(*(r[i] for i in _MUTABLE_AT), r[0]) for r in changed])
        if new:
            con.executemany(_INSERT_ALARMS, new)
        if not events:
            return set()
        before = con.total_changes
        con.executemany(_INSERT_EVENTS, events)
        if con.total_changes - before == len(events):
            return set()
        there = con.execute(
            "SELECT id FROM alarm_events WHERE id BETWEEN ? AND ?", (events[0][0], events[-1][0])
        ).fetchall()
        return {int(e[0]) for e in events} - {int(r[0]) for r in there}

    def shelves(self, con: sqlite3.Connection, now: int) -> dict[tuple[str, str, int], Shelf]:
        """The shelved alarm points and their shelves, of those still in force at `now`."""
        rows = con.execute(
            "SELECT sensor, rule, side, until, level, actor, reason, at FROM shelves "
            "WHERE until > ?",
            (now,),
        )
        return {
            (r[0], r[1], r[2]): Shelf(int(r[3]), None if r[4] is None else int(r[4]), *r[5:])
            for r in rows.fetchall()
        }

    def sensors_out(self, con: sqlite3.Connection) -> set[str]:
        return {r[0] for r in con.execute("SELECT sensor FROM out_of_service").fetchall()}

    def update_alarms(self, con: sqlite3.Connection, rows: Sequence[AlarmRow]) -> None:
        """Write the changeable columns of alarms changed in memory."""
        if not rows:
            return
        sets = ", ".join(f"{c} = ?" for c in MUTABLE)
        con.executemany(
            f"UPDATE alarms SET {sets} WHERE id = ?",
            [(*(getattr(r, c) for c in MUTABLE), r.id) for r in rows],
        )

    def insert_alarm(self, con: sqlite3.Connection, fields: dict[str, Any]) -> int:
        names = ", ".join(fields)
        cur = con.execute(
            f"INSERT INTO alarms ({names}) VALUES ({','.join('?' * len(fields))})",
            tuple(fields.values()),
        )
        return int(cur.lastrowid or 0)

    def update_alarm(self, con: sqlite3.Connection, alarm_id: int, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        con.execute(f"UPDATE alarms SET {sets} WHERE id = ?", (*fields.values(), alarm_id))

    def insert_event(
        self,
        con: sqlite3.Connection,
        alarm_id: int,
        kind: str,
        ts: int,
        arrival: int,
        level: int,
        level_name: str,
        tier: str,
        value: float | None,
        isa_state: str,
        actor: str | None = None,
        comment: str = "",
    ) -> int | None:
        """Append to the alarm's journal; a process event (no actor) is recorded once, so a
        retried batch adds nothing. Returns the event id, None when it was already there."""
        cur = con.execute(
            "INSERT OR IGNORE INTO alarm_events (alarm_id, kind, ts, arrival, level, level_name, "
            "tier, value, actor, comment, isa_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alarm_id,
                kind,
                ts,
                arrival,
                level,
                level_name,
                tier,
                value,
                actor,
                comment,
                isa_state,
            ),
        )
        return int(cur.lastrowid or 0) if cur.rowcount else None

    def shelf_until(
        self, con: sqlite3.Connection, sensor: str, rule: str, side: int, now: int
    ) -> int | None:
        row = con.execute(
            "SELECT until FROM shelves WHERE sensor = ? AND rule = ? AND side = ? AND until > ?",
            (sensor, rule, side, now),
        ).fetchone()
        return int(row[0]) if row else None

    def set_shelf(
        self,
        con: sqlite3.Connection,
        key: tuple[str, str, int],
        until: int | None,
        actor: str = "",
        reason: str = "",
        at: int = 0,
        level: int | None = None,
    ) -> None:
        """Shelve the alarm point (sensor, rule, side) until a time, up to `level`, or unshelve
        it (None): an activation while it is shelved starts shelved, unless above `level`."""
        if until is None:
            con.execute("DELETE FROM shelves WHERE sensor = ? AND rule = ? AND side = ?", key)
        else:
            # shelved again while in force (another alarm of the point), it keeps the higher
            # level: an old yellow shelved after the live red does not end the red's shelve
            con.execute(
                "INSERT INTO shelves (sensor, rule, side, until, actor, reason, at, level) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sensor, rule, side) DO UPDATE SET "
                "until = excluded.until, actor = excluded.actor, reason = excluded.reason, "
                "at = excluded.at, level = CASE WHEN shelves.until > excluded.at "
                "AND shelves.level > excluded.level THEN shelves.level ELSE excluded.level END",
                (*key, until, actor, reason, at, level),
            )

    def out_of_service(self, con: sqlite3.Connection, sensor: str) -> bool:
        row = con.execute("SELECT 1 FROM out_of_service WHERE sensor = ?", (sensor,)).fetchone()
        return row is not None

    def set_out_of_service(
        self,
        con: sqlite3.Connection,
        sensor: str,
        tenant: str,
        actor: str | None,
        reason: str = "",
        at: int = 0,
    ) -> None:
        """Take a sensor out of service (actor given) or return it to service (actor None)."""
        if actor is None:
            con.execute("DELETE FROM out_of_service WHERE sensor = ?", (sensor,))
        else:
            con.execute(
                "INSERT OR REPLACE INTO out_of_service (sensor, tenant, actor, reason, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (sensor, tenant, actor, reason, at),
            )
