"""The notification pipeline's SQL: the journal and the objects (subscriptions, escalation
policies, silences) in the state database (`alerts.statedb`), the routing cursor and the outbox
in a database of their own (`alerts.notify.outboxdb`). The statements that take a connection
run in the caller's transaction or snapshot of the right one. The outbox's statements are in
`alerts.notify.outboxrows`."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from alerts.notify.outboxdb import OutboxDB
from alerts.notify.outboxrows import LOCAL_TYPES, OutboxStatements
from alerts.statedb import StateDB, chunks_in
from alerts.table import kind_name

__all__ = ["LOCAL_TYPES", "NotifyStore"]

_JOURNAL = (
    "SELECT e.id, e.alarm_id, e.kind, e.ts, e.arrival, e.level, e.level_name, e.tier, e.value, "
    "e.actor, e.comment, e.isa_state, a.tenant, a.site, a.device, a.sensor, a.rule, a.side, "
    "a.tier, a.action, a.state, a.disposal, a.raised_at, "
    # the tiers the alarm had, for a clear, a step down or a missed disposal deadline: a
    # subscription told of the alarm at one of them is told of its end, and of the deadline it
    # missed (a red alarm stepped down to yellow missed red's 300 s unseen by the red-only
    # receiver, helper-115) (read only for those, from the alarm's own events); and
    # for a return from a shelf, a suppression or out of service of an alarm whose clear was
    # held back meanwhile (and not told since): it is told as that clear (`EventView`)
    "CASE WHEN e.kind IN ('cleared', 'deescalated', 'overdue') OR (e.kind IN ("
    "'unshelved', 'unsuppressed', 'in_service') AND a.state != 'active' AND EXISTS ("
    "SELECT 1 FROM alarm_events c WHERE c.alarm_id = e.alarm_id AND c.kind = 'cleared' "
    "AND c.isa_state IN ('shelved', 'suppressed', 'out_of_service') AND c.id < e.id "
    "AND NOT EXISTS (SELECT 1 FROM alarm_events r WHERE r.alarm_id = e.alarm_id "
    "AND r.kind IN ('unshelved', 'unsuppressed', 'in_service') AND r.id > c.id AND r.id < e.id)"
    ")) THEN (SELECT group_concat(DISTINCT x.tier) "
    "FROM alarm_events x WHERE x.alarm_id = e.alarm_id AND x.id <= e.id) ELSE '' END "
    "FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
)
_JOURNAL_KEYS = (
    "event_id",
    "alarm_id",
    "kind",
    "ts",
    "arrival",
    "level",
    "level_name",
    "tier",
    "value",
    "actor",
    "comment",
    "isa_state",
    "tenant",
    "site",
    "device",
    "sensor",
    "rule",
    "side_index",
    "alarm_tier",
    "action",
    "condition",
    "disposal",
    "raised_at",
    "tiers_had",
)
_ALARM_AS_JOURNAL = (
    "SELECT 0, id, 'open', last_ts, raised_at, level, level_name, tier, value, NULL, '', "
    "isa_state, tenant, site, device, sensor, rule, side, tier, action, state, disposal, "
    "raised_at, '' FROM alarms "
)

# an alarm that waits for an acknowledgement (active, not shelved, suppressed or out of service)
# of the site (the enterprise's console: `acked`) or of the supervising centre (`centre_acked`),
# as a journal row with whom it waits for (`waits_for`): the centre's own subscriptions repeat
# and escalate until the centre acknowledges, the enterprise's until the enterprise does
_WAITING_AS_JOURNAL = (
    _ALARM_AS_JOURNAL.removesuffix("FROM alarms ")
    + ", isa_state = 'unack', isa_state IN ('unack', 'ack') AND centre_acked = 0 FROM alarms "
    "WHERE (isa_state = 'unack' OR (isa_state = 'ack' AND centre_acked = 0)) "
)
_WAITING_KEYS = (*_JOURNAL_KEYS, "site_waits", "centre_waits")


def waits_for(sub_id: str, row: dict[str, Any]) -> bool:
    """Whether a waiting alarm (`NotifyStore.unacknowledged`, `waiting`) still waits for the
    acknowledgement a subscription's repeats and escalation steps stop on: the supervising
    centre's for the centre's own subscriptions (`*<id>`, the hub's `notify.subscriptions`), the
    enterprise's (`acked`) for every subscription of the tenant."""
    return bool(row["centre_waits"] if sub_id.startswith("*") else row["site_waits"])


class NotifyStore(OutboxStatements):
    def __init__(self, db: StateDB, outbox: OutboxDB) -> None:
        self.db = db
        self.outbox_db = outbox

    def notify_objects(self, tenants: Sequence[str] | None) -> list[tuple[str, str, str, str, str]]:
        """(kind, tenant, id, spec, origin) of the tenants given (None: all)."""
        rows = self.db.query(
            "SELECT kind, tenant, id, spec, origin FROM notify_objects ORDER BY id"
        )
        return [r for r in rows if tenants is None or r[1] in tenants]

    def notify_object_rows(
        self, kind: str, tenants: Sequence[str] | None
    ) -> list[tuple[str, str, str, str, int]]:
        """(tenant, spec, origin, actor, updated_at) of one kind, for the tenants given (None:
        all)."""
        rows = self.db.query(
            "SELECT tenant, spec, origin, actor, updated_at FROM notify_objects WHERE kind = ?"
            " ORDER BY id",
            (kind,),
        )
        return [r for r in rows if tenants is None or r[0] in tenants]

    # the journal (state database) and the routing cursor (outbox database) ------------------
    @staticmethod
    def cursor(con: sqlite3.Connection, name: str) -> int:
        """The last journal event id a stage has done (0: none)."""
        row = con.execute("SELECT last_id FROM notify_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def cursor_now(self, name: str) -> int:
        """The cursor as last committed (outside a transaction)."""
        rows = self.outbox_db.query("SELECT last_id FROM notify_cursor WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def set_cursor(con: sqlite3.Connection, name: str, last_id: int) -> None:
        con.execute(
            "INSERT OR REPLACE INTO notify_cursor (name, last_id) VALUES (?, ?)", (name, last_id)
        )

    @staticmethod
    def journal_after(con: sqlite3.Connection, cursor: int, limit: int) -> list[dict[str, Any]]:
        rows = con.execute(_JOURNAL + "WHERE e.id > ? ORDER BY e.id LIMIT ?", (cursor, limit))
        return [dict(zip(_JOURNAL_KEYS, r, strict=True)) for r in rows.fetchall()]

    @staticmethod
    def unacknowledged(con: sqlite3.Connection) -> list[dict[str, Any]]:
        """Active alarms (not shelved, suppressed or out of service) not acknowledged by the
        site or not by the centre, with whom they wait for (`waits_for`)."""
        rows = con.execute(_WAITING_AS_JOURNAL).fetchall()
        return [dict(zip(_WAITING_KEYS, r, strict=True)) for r in rows]

    @staticmethod
    def waiting(con: sqlite3.Connection, alarm_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Those of the alarms that are active and unacknowledged (by the site or by the centre:
        `waits_for`), as journal rows by id."""
        out: dict[int, dict[str, Any]] = {}
        for chunk, marks in chunks_in(alarm_ids):
            rows = con.execute(
                _WAITING_AS_JOURNAL + f"AND state = 'active' AND id IN ({marks})",
                chunk,
            ).fetchall()
            for r in rows:
                row = dict(zip(_WAITING_KEYS, r, strict=True))
                out[int(row["alarm_id"])] = row
        return out

    @staticmethod
    def active_of(con: sqlite3.Connection, alarm_ids: Sequence[int]) -> set[int]:
        """Those of the alarms that are active (acknowledged, shelved ones too)."""
        out: set[int] = set()
        for chunk, marks in chunks_in(alarm_ids):
            rows = con.execute(
                f"SELECT id FROM alarms WHERE state = 'active' AND id IN ({marks})", chunk
            )
            out.update(int(r[0]) for r in rows)
        return out

    @staticmethod
    def inhibition_context(
        con: sqlite3.Connection, sensors: set[str]
    ) -> tuple[dict[str, list[tuple[str, str]]], frozenset[str]]:
        """The active alarms of these sensors as (kind, tier), and the devices in comm loss and
        gateways offline (their alarms' ids)."""
        active: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for chunk, marks in chunks_in(sorted(sensors)):
            for sensor, side, tier in con.execute(
                "SELECT sensor, side, tier FROM alarms WHERE state = 'active' "
                f"AND sensor IN ({marks})",
                chunk,
            ):
                kind = kind_name(side)
                active[sensor].append((kind, tier))
        down = frozenset(
            r[0]
            for r in con.execute(
                # a range, not LIKE, so that the index of active alarms serves it
                "SELECT sensor FROM alarms WHERE state = 'active' AND rule = 'comm_loss' "
                "AND sensor >= 'device:' AND sensor < 'device;' UNION ALL "
                "SELECT sensor FROM alarms WHERE state = 'active' AND rule = 'gateway' "
                "AND sensor >= 'gateway:' AND sensor < 'gateway;'"
            )
        )
        return dict(active), down
