"""The notification outbox's statements (`alerts.notify.store`): routing adds rows or grows a
group, delivery takes what is due and settles it, old rows are pruned, and the API lists the
rows and sends a dead one again; each notification goes out with its key and the installation's
id (`sent_key`). Split from `alerts.notify.store`, whose `NotifyStore` extends
`OutboxStatements` and sets up the attribute declared here; the code moved as it was.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from alerts.notify.outboxdb import OutboxDB
from alerts.statedb import chunks_in

__all__ = ["LOCAL_TYPES", "NOT_CENTRES", "SEND_AGAIN", "OutboxStatements", "sent_again"]


# the hub's own channels (the browsers' stream, the hub's broker): their rows count against no
# tenant's or global share of delivery (`alerts.notify.delivery`)
LOCAL_TYPES = ("sse", "mqtt")

# not a row of the centre's own subscriptions (`*<id>`: `alerts.notify.objects`), which a caller
# limited to tenants does not see: an enterprise saw the centre's receiver in its errors
NOT_CENTRES = "instr(subscription, '/*') = 0"
# a dead row pending again, due at once, with the channel it has now (one still dead only: a
# row delivered or pending meanwhile is left); the one-by-one retry and the bulk one
SEND_AGAIN = (
    "UPDATE outbox SET status = 'pending', due_at = ?, last_error = ?, "
    "channel = COALESCE(?, channel) WHERE id = ? AND status = 'dead' RETURNING id"
)


def sent_again(channel: str | None) -> str:
    """What a dead row sent again by hand says (`last_error`): with which channel."""
    if channel is None:
        return "sent again by hand, with the channel it was made with"
    return "sent again by hand, with its channel as configured now"


# an outbox row as the API lists it (`OutboxPublic`)
_OUTBOX_ROW = (
    "SELECT id, key, tenant, site, subscription, subject, created_at, due_at, attempts, "
    "status, last_error, delivered_at, series FROM outbox"
)


class OutboxStatements:
    """The outbox's statements of `NotifyStore`, which sets up the attribute declared here."""

    outbox_db: OutboxDB

    def sent_key(self, key: str, series: str | None = None) -> str:
        """The key a notification goes out with: the outbox row's, and `@` the installation's
        id (`OutboxDB.installation`, kept with the outbox: the keys' namespace), or the row's
        own (`series`: a row made before the hub started on a restored copy). A hub started
        afresh (a new data folder) or on a restored backup numbers its events from 1, or from
        the backup's, again; with an id of its own its keys still never repeat those sent
        before, which a receiver dropping repeats by key would otherwise take for repeats of
        alarms it had, and drop."""
        return f"{key}@{series or self.outbox_db.installation}"

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
        texts: bool = True,
    ) -> list[tuple[Any, ...]]:
        """The rows due for sending, but those `taken` already (in flight), those of the
        channels in `full` (their receiver has no room), and, but for the hub's own channels
        (`LOCAL_TYPES`: they count against no share), those of `full_tenants` or, with
        `only_local`, all others; closes their groups so that nothing is added meanwhile.
        With `scan`, only among the first `scan` rows due and not taken: the exclusions can
        otherwise read every pending row to find none (a busy receiver's backlog, ~1 µs a row).
        Without `texts`, a row's subject and events are '' (its events read only when it has no
        `arrival`, a row of before the column): delivery reads them (`texts_of`) for the rows
        it has room for, often a few of a take (a receiver with a little room)."""
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
            bodies = "subject, events" if texts else "'', IIF(arrival IS NULL, events, '')"
            rows = con.execute(
                f"SELECT id, key, tenant, site, subscription, channel, {bodies}, "
                f"created_at, attempts, arrival, open_until, series FROM outbox WHERE {where} "
                "ORDER BY due_at, id LIMIT ?",
                (*params, limit),
            ).fetchall()
            grouped = [(r[0],) for r in rows if r[11] is not None]
            if grouped:
                con.executemany("UPDATE outbox SET open_until = NULL WHERE id = ?", grouped)
        return [(*r[:11], r[12]) for r in rows]

    def texts_of(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """The subject and events of rows taken without them (`take_due`), by id."""
        found: dict[int, tuple[str, str]] = {}
        for chunk, marks in chunks_in(ids):
            sql = f"SELECT id, subject, events FROM outbox WHERE id IN ({marks})"
            found.update((r[0], (r[1], r[2])) for r in self.outbox_db.query(sql, chunk))
        return found

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
                where.append(NOT_CENTRES)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self.outbox_db.query(
            f"{_OUTBOX_ROW} {clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [self._as_sent(r) for r in rows]

    def retry_dead(
        self,
        row_id: int,
        tenants: Sequence[str] | None,
        now: int,
        channel_now: Callable[[str, str, str], str | None] | None = None,
    ) -> tuple[Any, ...] | str | None:
        """Send a dead notification once more, now (its receiver is back, its secret or address
        was corrected, or the address the centre allowed since): pending again, due at `now`,
        with its key and events as they were (a receiver that had it drops it) and the channel
        its subscription or escalation step has now (`channel_now(subscription, key, channel)`:
        the outbox text; None, or no `channel_now`: the channel as it was). Its
        give-up time still counts from when it was made: a failure ends it again. The row as
        `outbox` lists it; None when there is none of the tenants given; its status when it is
        not dead."""
        with self.outbox_db.transaction() as con:
            row = con.execute(
                f"SELECT tenant, status, {NOT_CENTRES}, subscription, key, channel FROM outbox "
                "WHERE id = ?",
                (row_id,),
            ).fetchone()
            if row is None or (tenants is not None and (row[0] not in tenants or not row[2])):
                return None
            if row[1] != "dead":
                return str(row[1])
            channel = channel_now(row[3], row[4], row[5]) if channel_now is not None else None
            con.execute(SEND_AGAIN, (now, sent_again(channel), channel, row_id)).fetchone()
        rows = self.outbox_db.query(f"{_OUTBOX_ROW} WHERE id = ?", (row_id,))
        return self._as_sent(rows[0]) if rows else None

    def _as_sent(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """An `_OUTBOX_ROW` as the API lists it: its key as the receivers got it."""
        return (row[0], self.sent_key(row[1], row[12]), *row[2:12])

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
