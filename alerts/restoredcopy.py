"""A state database restored from a backup numbers its alarms and journal events on from far
above the backup's last ids.

The hub that made the backup went on after it: the alarms and journal events it numbered after
the backup were told to webhooks, e-mails, the event stream (`id:`) and API clients. Restored,
the database would give those ids again to other alarms: a receiver keeping alarms by
`alarm_id` would merge two, and an event-stream client resuming from an id the lost hub gave
(`Last-Event-ID`) would skip every new event up to it. `hazardhub backup` marks its copy
(`restored_copy`, as it marks the outbox: `alerts.notify.outboxdb.mark_restored`), `hazardhub
restored` marks a folder put back otherwise; the first `StateDB` to open a marked file moves
every AUTOINCREMENT counter `GAP` above where it stands, in one transaction with clearing the
mark, so ids given from then on were never given by the hub before the restore unless it gave
more than `GAP` after its backup.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["GAP", "mark_copy", "mark_state_restored", "renumber_restored"]

GAP = 10_000_000  # ids skipped after a restore (a centre's busiest days give ~10^5 events)
log = logging.getLogger(__name__)
MARK_SCHEMA = "CREATE TABLE IF NOT EXISTS restored_copy (taken_at INTEGER)"


def mark_copy(path: Path, taken_at: int | None, needs: frozenset[str]) -> bool:
    """Mark the SQLite file at `path` a restored copy (a `restored_copy` row; `taken_at`: when
    the backup was taken, ms, None unknown), if it holds the tables `needs`; False otherwise (no
    such file, no SQLite database, not the hub's database it should be: nothing marked)."""
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.OperationalError:  # no such file
        return False
    try:
        con.isolation_level = None
        try:
            found = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {r[0] for r in found}
        except sqlite3.DatabaseError:  # no SQLite database
            return False
        if not needs <= tables:
            return False
        con.execute("BEGIN IMMEDIATE")
        con.execute(MARK_SCHEMA)
        con.execute("INSERT INTO restored_copy (taken_at) VALUES (?)", (taken_at,))
        con.execute("COMMIT")
        return True
    finally:
        con.close()


def mark_state_restored(path: Path, taken_at: int | None) -> bool:
    """Mark the state database at `path` a restored copy. False when it is no hub state
    database (no `alarms` table)."""
    return mark_copy(path, taken_at, frozenset({"alarms"}))


def renumber_restored(con: sqlite3.Connection, path: str) -> dict[str, int] | None:
    """On a marked copy (`con` in autocommit mode): every AUTOINCREMENT table's counter moved
    `GAP` above its highest id ever given, the mark cleared, in one transaction, and said once
    in the log. Returns each table's next id, or None when the file is not marked."""
    # read first: a file not marked (every start but the first on a backup) is not written,
    # so that a hub starts beside another process holding the database's lock
    marked = con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'restored_copy'"
    ).fetchone()
    if marked is None or con.execute("SELECT 1 FROM restored_copy").fetchone() is None:
        return None
    con.execute("BEGIN IMMEDIATE")
    try:
        taken = [r[0] for r in con.execute("SELECT taken_at FROM restored_copy")]
        if not taken:  # another process renumbered it first
            con.execute("COMMIT")
            return None
        tables = [
            str(r[0])
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'"
            )
        ]
        nxt: dict[str, int] = {}
        for table in tables:
            # the name is one of the file's own tables (sqlite_master), never input
            sql = f'SELECT COALESCE(MAX(rowid), 0) FROM "{table}"'  # noqa: S608
            top = con.execute(sql).fetchone()[0]
            row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
            seq = max(int(top), int(row[0]) if row else 0) + GAP
            if row:
                con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (seq, table))
            else:
                con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
            nxt[table] = seq + 1
        con.execute("DELETE FROM restored_copy")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    stamps = [int(t) for t in taken if t is not None]
    when = (
        f"a backup taken at {datetime.fromtimestamp(max(stamps) / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"
        if stamps
        else "a data folder marked restored (`hazardhub restored`)"
    )
    log.warning(
        "%s started from %s: new alarms are numbered from %d, journal events from %d (ids the "
        "hub gave after the backup are never given again)",
        path,
        when,
        nxt.get("alarms", 0),
        nxt.get("alarm_events", 0),
    )
    return nxt
