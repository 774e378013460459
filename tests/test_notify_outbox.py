"""The outbox's own database (`alerts.notify.outboxdb`): where the routing cursor starts, the
hand-over from a state database of before the split, a state database restored from an older
backup than the outbox, and routing and delivery that never take the state database's writer
lock."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

import orjson
import pytest
from test_notify import Rig

from alerts.errors import AlarmStoreError
from alerts.notify.channels import Notification, Senders
from alerts.notify.notifier import Notifier
from alerts.notify.outboxdb import OUTBOX_COLUMNS, OutboxDB, outbox_path
from telemetry.notifyconfig import SmtpSpec

from receivers import WebhookReceiver


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def _notifier(rig: Rig, sent: list[Notification]) -> Notifier:
    async def sse(n: Notification) -> None:
        sent.append(n)

    return Notifier(
        rig.db, rig.reg, Senders(smtp=SmtpSpec(), sse_publish=sse), clock=lambda: rig.now
    )


def _cursor(outbox: OutboxDB) -> int:
    return int(outbox.query("SELECT last_id FROM notify_cursor WHERE name = 'route'")[0][0])


def test_the_outbox_file_sits_beside_the_state_database(tmp_path):
    assert outbox_path(tmp_path / "state.db") == tmp_path / "state-outbox.db"
    assert outbox_path(tmp_path / "s") == tmp_path / "s-outbox.db"


async def test_a_new_pipeline_starts_after_what_was_journaled_before_it(rig, tmp_path):
    rig.notifier.close()
    outbox_path(rig.db.path).unlink()
    rig.feed("ch4-t1", [0.3, 1.1])  # journaled before any pipeline existed
    sent: list[Notification] = []
    again = _notifier(rig, sent)
    rig.notifier = again
    rig.subscribe(id="all")
    assert _cursor(again.outbox) == 1
    assert again.route() == 0
    rig.feed("ch4-t1", [1.6])  # and what comes after it is routed
    assert again.route() == 1
    assert await again.deliver_due() == 1
    assert [n.key for n in sent] == ["north-coal/all:e2"]


async def test_a_state_database_of_before_the_split_hands_its_outbox_over(rig):
    """Its pending rows are delivered once, with their keys; its delivered history and cursor
    come along; its own tables are left empty."""
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.feed("co", [0.0, 30.0])
    assert len(await rig.pump()) == 2  # e1, e2 delivered
    rig.feed("ch4-t1", [1.6])
    rig.notifier.route()  # e3 routed, not delivered
    # put it back as an older hub kept it: in the state database's own tables
    old = f"SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id"
    rows = rig.notifier.outbox.query(old)
    cursor = _cursor(rig.notifier.outbox)
    with rig.db.transaction() as con:
        con.executemany(f"INSERT INTO outbox VALUES ({','.join('?' * 16)})", rows)
        con.execute("INSERT INTO notify_cursor VALUES ('route', ?)", (cursor,))
    rig.notifier.close()
    outbox_path(rig.db.path).unlink()

    sent: list[Notification] = []
    again = _notifier(rig, sent)
    assert again.outbox.query(old) == rows
    assert again.outbox.query("SELECT DISTINCT arrival FROM outbox") == [(None,)]
    assert _cursor(again.outbox) == cursor == 3
    assert rig.db.query("SELECT COUNT(*) FROM outbox") == [(0,)]
    assert rig.db.query("SELECT COUNT(*) FROM notify_cursor WHERE name = 'route'") == [(0,)]
    assert again.route() == 0  # nothing routed twice
    assert await again.deliver_due() == 1
    assert [n.key for n in sent] == ["north-coal/all:e3"]
    # new rows go after the old ids
    rig.feed("ch4-t1", [0.5])
    assert again.route() == 1
    ids = [r[0] for r in again.outbox.query("SELECT id FROM outbox ORDER BY id")]
    assert ids == [1, 2, 3, 4]


def test_a_hand_over_cut_short_is_done_again_and_changes_nothing_there(rig, tmp_path):
    """A crash after the copy, before the state database's rows were deleted: the next start
    copies again, keeps what the outbox has (here: delivered since), and then deletes."""
    row = ("k1", "north-coal", "s", "north-coal/all", '{"type": "sse"}', "x", "[]", 5, 5)
    with rig.db.transaction() as con:
        con.execute(
            "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
            "created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        con.execute("INSERT INTO notify_cursor VALUES ('route', 0)")
    fresh = OutboxDB(tmp_path / "fresh-outbox.db")
    with fresh.transaction() as con:  # the copy that was made, and delivered since
        con.execute(
            "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
            "created_at, due_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'delivered')",
            row,
        )
    assert fresh.adopt(rig.db) == 0
    assert fresh.query("SELECT key, status FROM outbox") == [("k1", "delivered")]
    assert rig.db.query("SELECT COUNT(*) FROM outbox") == [(0,)]
    assert fresh.adopt(rig.db) == 0  # nothing left to hand over
    fresh.close()


def test_a_cursor_ahead_of_the_journal_comes_back_to_it(rig, tmp_path, caplog):
    """The state database restored from a backup older than the outbox: events journaled
    from then on get ids the cursor has passed, and would never be routed."""
    rig.feed("ch4-t1", [0.3, 1.1])
    with rig.notifier.outbox.transaction() as con:
        con.execute("UPDATE notify_cursor SET last_id = 40 WHERE name = 'route'")
    rig.notifier.close()
    with caplog.at_level(logging.WARNING, logger="alerts.notify.outboxdb"):
        again = _notifier(rig, [])
    assert _cursor(again.outbox) == 1
    assert "ahead of the state database's journal" in caplog.text
    rig.notifier = again
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [1.6])
    assert again.route() == 1


async def test_routing_and_delivery_never_take_the_state_databases_writer_lock(rig):
    """The alarm book holds the state database's writer lock (here: for the whole of routing
    and delivery) and the pipeline still routes, delivers and settles."""
    rig.subscribe(id="all", repeat_s=60)
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.feed("co", [0.0, 30.0])
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with rig.db.transaction():
            held.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(5)
        assert rig.notifier.route() == 2
        rig.now += 61_000
        assert rig.notifier.timers() == 2  # a repeat of each, still unacknowledged
        assert await rig.notifier.deliver_due() == 4
    finally:
        release.set()
        t.join()
    status = rig.notifier.outbox.query("SELECT key, status FROM outbox ORDER BY id")
    assert [s for _, s in status] == ["delivered"] * 4
    assert [k.split(":")[1][0] for k, _ in status] == ["e", "e", "r", "r"]


def test_an_outbox_of_a_newer_hub_is_refused(tmp_path):
    path = tmp_path / "x-outbox.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(AlarmStoreError, match="schema 99"):
        OutboxDB(path)


class _Metrics:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self.seen[name] = self.seen.get(name, 0) + amount


async def test_a_batched_webhook_carries_the_events_as_routed_and_counts_their_latency(rig):
    """The events' JSON goes from the outbox into the POST as it is (not read and written
    again): the receiver gets each notification with the events routing made, signed; the
    latency counts from each row's earliest arrival."""
    secret = "s3cret"
    metrics = _Metrics()
    with WebhookReceiver(secret=secret) as receiver:
        notifier = Notifier(
            rig.db,
            rig.reg,
            Senders(smtp=SmtpSpec()),
            clock=lambda: rig.now,
            metrics=metrics,
        )
        rig.notifier.close()
        rig.notifier = notifier
        hook = {"type": "webhook", "url": receiver.url, "secret": secret, "batch_max": 10}
        rig.subscribe(id="one", channel=hook)
        rig.subscribe(id="grp", channel=hook, group_window_s=5, match={"sites": ["face-1301"]})
        rig.feed("ch4-t1", [0.3, 1.1])
        rig.feed("co", [0.0, 30.0])
        rig.feed("ch4-t2", [0.3, 1.1])
        notifier.route()
        routed = {
            key: orjson.loads(events)
            for key, events in notifier.outbox.query("SELECT key, events FROM outbox")
        }
        rig.now += 6000  # the group's window is over
        arrivals = dict(notifier.outbox.query("SELECT key, arrival FROM outbox"))
        assert await notifier.deliver_due() == len(routed)
        (req,) = await receiver.wait_for(1)
        await notifier._senders.aclose()
    assert req.signature_ok is True
    got = {n["key"]: n for n in req.json()["notifications"]}
    assert {k: n["events"] for k, n in got.items()} == routed
    assert any(len(evs) > 1 for evs in routed.values())  # the group row
    assert all(n["subscription"] == k.split(":")[0] for k, n in got.items())
    for key, events in routed.items():
        assert arrivals[key] == min(e["arrival"] for e in events)
    latency = metrics.seen["hazardhub_notification_latency_ms_sum"]
    assert latency == sum(rig.now - a for a in arrivals.values())


async def test_old_delivered_and_dead_rows_are_deleted_pending_ones_stay(rig):
    """`outbox_keep_days` (30) after they were made, delivered and dead rows go, in batches,
    from the pipeline's own loop; a row still pending stays whatever its age."""
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.feed("co", [0.0, 30.0])
    assert len(await rig.pump()) == 2  # delivered
    with rig.notifier.outbox.transaction() as con:  # one of them died instead
        con.execute("UPDATE outbox SET status = 'dead' WHERE key = 'north-coal/all:e2'")
        rig.notifier.store.add_outbox_rows(  # and an old one still waits (a receiver away)
            con,
            [
                (
                    "north-coal/all:old",
                    "north-coal",
                    "face-1301",
                    "north-coal/all",
                    '{"type": "pigeon"}',
                    "x",
                    "[]",
                    rig.now,
                    rig.now + 10**12,
                    None,
                    0,
                    None,
                )
            ],
        )
    made_at = rig.now
    rig.now += 29 * 86_400_000
    assert rig.notifier.prune() == 0
    rig.feed("ch4-t1", [1.6])
    assert len(await rig.pump()) == 1  # a new row, delivered
    rig.now = made_at + 30 * 86_400_000 + 1
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.01))
    try:

        async def pruned() -> bool:
            keys = {k for (k,) in rig.notifier.outbox.query("SELECT key FROM outbox")}
            return keys == {"north-coal/all:old", "north-coal/all:e3"}

        for _ in range(200):
            if await pruned():
                break
            await asyncio.sleep(0.02)
        assert await pruned()
    finally:
        stop.set()
        await run
