"""The notification pipeline's SQL: the journal and the objects (subscriptions, escalation
policies, silences) in the state database (`alerts.statedb`), the routing cursor and the outbox
in a database of their own (`alerts.notify.outboxdb`). The statements that take a connection
run in the caller's transaction or snapshot of the right one."""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from alerts.notify.outboxdb import OutboxDB
from alerts.statedb import StateDB, chunks_in
from alerts.table import kind_name

# the hub's own channels (the browsers' stream, the hub's broker): their rows count against no
# tenant's or global share of delivery (`alerts.notify.delivery`)
LOCAL_TYPES = ("sse", "mqtt")

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


# not a row of the centre's own subscriptions (`*<id>`: `alerts.notify.objects`), which a caller
# limited to tenants does not see: an enterprise saw the centre's receiver in its errors
_NOT_CENTRES = "instr(subscription, '/*') = 0"

# an outbox row as the API lists it (`OutboxPublic`)
_OUTBOX_ROW = (
    "SELECT id, key, tenant, site, subscription, subject, created_at, due_at, attempts, "
    "status, last_error, delivered_at FROM outbox"
)


class NotifyStore:
    def __init__(self, db: StateDB, outbox: OutboxDB) -> None:
        self.db = db
        self.outbox_db = outbox

    def sent_key(self, key: str) -> str:
        """The key a notification goes out with: the outbox row's, and `@` the installation's
        id (`OutboxDB.installation`, kept with the outbox: the keys' namespace). A hub started
        afresh (a new data folder) numbers its events from 1 again; with its own id its keys
        still never repeat an earlier hub's, which a receiver dropping repeats by key would
        otherwise take for repeats of alarms it had, and drop."""
        return f"{key}@{self.outbox_db.installation}"

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

    # the outbox -----------------------------------------------------------------------------
    @staticmethod
    def add_outbox_rows(con: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Add notifications (key, tenant, site, subscription, channel, subject, events JSON,
        created, due, open until, first event, the events' earliest arrival); a key already
        there (routed before a crash) is skipped. Returns how many were added."""
        if not rows:
            return 0
        before = con.total_changes
        con.executemany(
            "INSERT OR IGNORE INTO outbox (key, tenant, site, subscription, channel, subject, "
            "events, created_at, due_at, open_until, first_event, arrival) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return con.total_changes - before

    @staticmethod
    def append_to_group(
        con: sqlite3.Connection,
        subscription: str,
        tenant: str,
        site: str,
        now: int,
        event: dict[str, Any],
        max_events: int,
    ) -> bool:
        """Add the event to the subscription's open group for the site, if there is one."""
        row = con.execute(
            "SELECT id, events, subject FROM outbox WHERE subscription = ? AND tenant = ? "
            "AND site = ? AND open_until IS NOT NULL AND open_until > ? AND status = 'pending' "
            "ORDER BY id DESC LIMIT 1",
            (subscription, tenant, site, now),
        ).fetchone()
        if row is None:
            return False
        events = orjson.loads(row[1])
        if len(events) >= max_events:
            return False
        events.append(event)
        head = re.sub(r" \(\+\d+\)$", "", str(row[2]))  # (a name may hold " (+": the last only)
        arrival = int(event["arrival"])
        con.execute(
            "UPDATE outbox SET events = ?, subject = ?, arrival = MIN(COALESCE(arrival, ?), ?) "
            "WHERE id = ?",
            (
                orjson.dumps(events).decode(),
                f"{head} (+{len(events) - 1})",
                arrival,
                arrival,
                row[0],
            ),
        )
        return True

    def take_due(
        self,
        now: int,
        limit: int,
        taken: Sequence[int] = (),
        full: Sequence[str] = (),
        full_tenants: Sequence[str] = (),
        *,
        only_local: bool = False,
        scan: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """The rows due for sending, but those `taken` already (in flight), those of the
        channels in `full` (their receiver has no room), and, but for the hub's own channels
        (`LOCAL_TYPES`: they count against no share), those of `full_tenants` or, with
        `only_local`, all others; closes their groups so that nothing is added meanwhile.
        With `scan`, only among the first `scan` rows due and not taken: the exclusions can
        otherwise read every pending row to find none (a busy receiver's backlog, ~1 µs a row)."""
        where = "status = 'pending' AND due_at <= ?"
        params: list[Any] = [now]
        if taken:
            where += " AND id NOT IN (SELECT value FROM json_each(?))"
            params.append(orjson.dumps(list(taken)).decode())
        if scan is not None:  # the first `scan` of those
            where = f"id IN (SELECT id FROM outbox WHERE {where} ORDER BY due_at, id LIMIT ?)"
            params.append(scan)
        if full:
            where += " AND channel NOT IN (SELECT value FROM json_each(?))"
            params.append(orjson.dumps(list(full)).decode())
        # a row whose channel is not JSON (an older or damaged one) is not local: never an error
        # (an enterprise's channel is wrapped, `{"guarded": true, "channel": {...}}`)
        local = (
            "(CASE WHEN json_valid(channel) THEN COALESCE(json_extract(channel, '$.channel.type'),"
            f" json_extract(channel, '$.type')) END IN {LOCAL_TYPES!r})"
        )
        if only_local:
            where += f" AND {local}"
        elif full_tenants:  # shares (`Delivery._share`): the centre's rows of a tenant apart
            share = (
                "(tenant || CASE WHEN json_valid(channel) AND json_extract(channel, '$.guarded')"
                " = 0 THEN '|centre' ELSE '' END)"
            )
            where += f" AND ({share} NOT IN (SELECT value FROM json_each(?)) OR {local})"
            params.append(orjson.dumps(list(full_tenants)).decode())
        with self.outbox_db.transaction() as con:
            rows = con.execute(
                "SELECT id, key, tenant, site, subscription, channel, subject, events, "
                f"created_at, attempts, arrival, open_until FROM outbox WHERE {where} "
                "ORDER BY due_at, id LIMIT ?",
                (*params, limit),
            ).fetchall()
            grouped = [(r[0],) for r in rows if r[11] is not None]
            if grouped:
                con.executemany("UPDATE outbox SET open_until = NULL WHERE id = ?", grouped)
        return [r[:11] for r in rows]

    def settle(self, results: Sequence[tuple[int, str, int, str, int | None]]) -> None:
        """Record the outcome of each try: delivered, dead, or pending again until `due`."""
        # the delivered ones of one moment (most of them) by one statement per 500
        alike: dict[tuple[int, int | None], list[int]] = defaultdict(list)
        others = []
        for rid, status, due, error, at in results:
            if status == "delivered" and not error:
                alike[due, at].append(rid)
            else:
                others.append((status, due, error[:500], at, rid))
        with self.outbox_db.transaction() as con:
            for (due, at), ids in alike.items():
                for chunk, marks in chunks_in(ids):
                    con.execute(
                        "UPDATE outbox SET status = 'delivered', due_at = ?, last_error = '', "
                        f"delivered_at = ?, attempts = attempts + 1 WHERE id IN ({marks})",
                        (due, at, *chunk),
                    )
            con.executemany(
                "UPDATE outbox SET status = ?, due_at = ?, last_error = ?, delivered_at = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                others,
            )

    def prune(self, before: int, limit: int) -> int:
        """Delete up to `limit` delivered or dead rows made before `before` (ms); a pending
        row stays whatever its age. Returns how many were deleted."""
        with self.outbox_db.transaction() as con:
            cur = con.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
                "WHERE status != 'pending' AND created_at < ? LIMIT ?)",
                (before, limit),
            )
            return int(cur.rowcount)

    def outbox(
        self,
        tenants: Sequence[str] | None,
        status: str | None = None,
        limit: int = 100,
        *,
        centre: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The outbox's rows of `tenants` (None: all), newest first; the centre's own
        subscriptions' rows only to the centre (`centre`, or all tenants)."""
        where, params = [], []  # type: list[str], list[Any]
        if tenants is not None:
            where.append(f"tenant IN ({','.join('?' * len(tenants))})")
            params.extend(tenants)
            if not centre:
                where.append(_NOT_CENTRES)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self.outbox_db.query(
            f"{_OUTBOX_ROW} {clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [(r[0], self.sent_key(r[1]), *r[2:]) for r in rows]  # as the receivers got it

    def retry_dead(
        self, row_id: int, tenants: Sequence[str] | None, now: int
    ) -> tuple[Any, ...] | str | None:
        """Send a dead notification once more, now (its receiver is back, or the address the
        centre allowed since): pending again, due at `now`, with its key and channel as they
        were (its give-up time still counts from when it was made: a failure ends it again).
        The row as `outbox` lists it; None when there is none of the tenants given; its status
        when it is not dead."""
        with self.outbox_db.transaction() as con:
            row = con.execute(
                f"SELECT tenant, status, {_NOT_CENTRES} FROM outbox WHERE id = ?", (row_id,)
            ).fetchone()
            if row is None or (tenants is not None and (row[0] not in tenants or not row[2])):
                return None
            if row[1] != "dead":
                return str(row[1])
            con.execute(
                "UPDATE outbox SET status = 'pending', due_at = ?, last_error = ? WHERE id = ?",
                (now, "sent again by hand", row_id),
            )
        rows = self.outbox_db.query(f"{_OUTBOX_ROW} WHERE id = ?", (row_id,))
        return (rows[0][0], self.sent_key(rows[0][1]), *rows[0][2:]) if rows else None

    def pending_count(self) -> int:
        return int(
            self.outbox_db.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0]
        )

    def pending_summary(self) -> tuple[int, int | None]:
        """How many notifications wait to be delivered, and when the oldest was made (None:
        none waits)."""
        count, oldest = self.outbox_db.query(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'"
        )[0]
        return int(count), None if oldest is None else int(oldest)
