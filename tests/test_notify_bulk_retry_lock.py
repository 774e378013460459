"""The bulk retry read the outbox inside its write transaction: a walk by id over every row (no
index on dead ones; 500,000 rows with 5 dead: 0.8 s) held routing and delivery, which take the
same lock (helper-247). It reads on the reading connection and changes, in a short transaction,
only the rows still dead: a row settled meanwhile stays as it was settled and is not counted."""

from __future__ import annotations

import threading
from pathlib import Path

from alerts.notify.bulkretry import DeadRows, retry_dead_rows
from alerts.notify.outboxdb import OutboxDB


def _rows(db: OutboxDB, statuses: list[str]) -> list[int]:
    with db.transaction() as con:
        for n, status in enumerate(statuses):
            con.execute(
                "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
                "created_at, due_at, attempts, status) VALUES (?, 'coal', 's', 'coal/ews', "
                "'{}', 'x', '[]', ?, ?, 1, ?)",
                (f"k{n}", n, n, status),
            )
        return [int(r[0]) for r in con.execute("SELECT id FROM outbox ORDER BY id")]


def _status(db: OutboxDB) -> dict[int, str]:
    return {int(i): str(s) for i, s in db.query("SELECT id, status FROM outbox", ())}


def test_a_row_settled_during_a_bulk_retry_is_not_held_up_nor_sent_again(tmp_path: Path) -> None:
    db = OutboxDB(tmp_path / "state-outbox.db")
    try:
        ids = _rows(db, ["dead", "delivered", "dead", "dead", "pending"])
        racing = ids[2]
        settled: list[bool] = []

        def settle() -> None:  # delivery (or a one-by-one retry) on another thread
            with db.transaction() as con:
                con.execute("UPDATE outbox SET status = 'delivered' WHERE id = ?", (racing,))

        def channel_now(subscription: str, key: str, channel: str) -> str | None:
            if not settled:
                other = threading.Thread(target=settle, name="settle")
                other.start()
                other.join(timeout=2.0)  # under the bulk retry's write lock: never finished
                settled.append(not other.is_alive())
            return None

        done = retry_dead_rows(db, DeadRows(None), 1_000, channel_now)
        assert settled == [True]  # the deliverer was not held up by the retry's read
        assert done.ids == [ids[0], ids[3]] and not done.more and done.last == ids[3]
        status = _status(db)
        assert status[racing] == "delivered"  # as settled, not made pending again
        assert [status[i] for i in ids] == [
            "pending",
            "delivered",
            "delivered",
            "pending",
            "pending",
        ]

        again = retry_dead_rows(db, DeadRows(None), 2_000, channel_now)
        assert (again.ids, again.more, again.last) == ([], False, None)  # idempotent
    finally:
        db.close()


def test_a_page_of_the_bulk_retry_says_where_the_next_starts(tmp_path: Path) -> None:
    db = OutboxDB(tmp_path / "state-outbox.db")
    try:
        ids = _rows(db, ["dead"] * 5)
        first = retry_dead_rows(db, DeadRows(["coal"], limit=2), 1_000)
        assert (first.ids, first.more, first.last) == (ids[:2], True, ids[1])
        rest = retry_dead_rows(db, DeadRows(["coal"], after=ids[1], limit=3), 1_000)
        assert (rest.ids, rest.more) == (ids[2:], False)
        assert set(_status(db).values()) == {"pending"}
        assert retry_dead_rows(db, DeadRows(["other"]), 1_000).ids == []
    finally:
        db.close()
