"""The outbox's own database (`alerts.notify.outboxdb`): where the routing cursor starts, the
hand-over from a state database of before the split, a state database restored from an older
backup than the outbox, and routing and delivery that never take the state database's writer
lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable

import orjson
import pytest

from alerts.errors import AlarmStoreError
from alerts.notify import outboxdb
from alerts.notify.channels import Notification, Senders
from alerts.notify.notifier import Notifier
from alerts.notify.outboxdb import OUTBOX_COLUMNS, OutboxDB, outbox_path
from alerts.statedb import StateDB
from telemetry.notifyconfig import EscalationPolicySpec, SmtpSpec

from notify_rig import Rig, bare, keys
from receivers import WebhookReceiver


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
    assert keys(sent) == ["north-coal/all:e2"]


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
    assert keys(sent) == ["north-coal/all:e3"]
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


async def test_a_state_database_restored_from_an_older_backup_gives_no_id_twice(
    rig, tmp_path, caplog
):
    """state.db restored from a backup older than state-outbox.db: its ids go on after those
    the outbox's keys hold, so that a new alarm (and its repeat) is routed and sent under keys
    of its own, not dropped as a key already there."""
    rig.subscribe(id="all", repeat_s=60)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(rig.db.path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    rig.feed("ch4-t1", [0.3, 1.1])
    rig.feed("co", [0.0, 30.0])
    assert len(await rig.pump()) == 2  # events 1 and 2 (alarms 1 and 2), sent
    rig.notifier.close()
    rig.db.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    backup.rename(tmp_path / "state.db")

    with caplog.at_level(logging.WARNING, logger="alerts.notify.outboxdb"):
        again = Rig(tmp_path)
    assert "is behind the outbox" in caplog.text
    assert _cursor(again.notifier.outbox) == 2
    (raised,) = again.feed("ch4-t2", [0.3, 1.1])
    assert raised.alarm_id > 2
    notes = await again.pump()
    assert [(bare(n.key), n.body["events"][0]["sensor"]) for n in notes] == [  # type: ignore[index]
        ("north-coal/all:e3", "ch4-t2")
    ]
    repeat = await again.pump(61)
    assert keys(repeat) == [f"north-coal/all:r{raised.alarm_id}:1"]
    # and a start with nothing behind warns of nothing
    again.notifier.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="alerts.notify.outboxdb"):
        _notifier(again, []).close()
    assert "is behind" not in caplog.text
    again.db.close()


async def test_a_hand_over_keeps_a_pending_row_whose_id_is_taken(rig):
    """An older hub's pending row whose id the outbox already gave another (a hub rolled back
    and forward again) is copied under a new id, and sent."""
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    assert len(await rig.pump()) == 1  # outbox id 1: north-coal/all:e1
    event = orjson.dumps([{"event_id": 7, "arrival": rig.now, "sensor": "ch4-t1"}]).decode()
    with rig.db.transaction() as con:
        con.execute(
            "INSERT INTO outbox (id, key, tenant, site, subscription, channel, subject, events, "
            "created_at, due_at) VALUES (1, 'north-coal/all:e7', 'north-coal', 'face-1301', "
            "'north-coal/all', '{\"type\": \"sse\"}', 'x', ?, ?, ?)",
            (event, rig.now, rig.now),
        )
    rig.notifier.close()
    sent: list[Notification] = []
    again = _notifier(rig, sent)
    rows = again.outbox.query("SELECT key, status FROM outbox ORDER BY id")
    assert rows == [("north-coal/all:e1", "delivered"), ("north-coal/all:e7", "pending")]
    assert await again.deliver_due() == 1
    assert keys(sent) == ["north-coal/all:e7"]
    assert rig.db.query("SELECT COUNT(*) FROM outbox") == [(0,)]
    again.close()


async def test_a_row_of_an_older_outbox_with_unreadable_events_is_dead_not_sent(rig):
    """Rows this hub routes carry their events' arrival and are sent as written; a row of
    before (no arrival) is read first: unreadable, it is dead with the reason, and the webhook
    batch it would have spoiled goes out without it."""
    secret = "s3cret"
    with WebhookReceiver(secret=secret) as receiver:
        hook = {"type": "webhook", "url": receiver.url, "secret": secret, "batch_max": 10}
        rig.subscribe(id="all", channel=hook)
        rig.feed("ch4-t1", [0.3, 1.1])
        rig.notifier.route()
        ((channel,),) = rig.notifier.outbox.query("SELECT channel FROM outbox")
        with rig.notifier.outbox.transaction() as con:
            con.execute(
                "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
                "created_at, due_at) VALUES ('north-coal/all:e9', 'north-coal', 'face-1301', "
                "'north-coal/all', ?, 'x', '[{\"event_id\": 9', ?, ?)",
                (channel, rig.now, rig.now),
            )
        assert await rig.notifier.deliver_due() == 1
        (req,) = await receiver.wait_for(1)
        await rig.notifier._senders.aclose()
    # alone: a batch of one is one notification
    assert bare(req.json()["key"]) == "north-coal/all:e1"
    (dead,) = rig.notifier.store.outbox(None, "dead")
    assert bare(dead[1]) == "north-coal/all:e9" and "unreadable events" in dead[10]


def test_an_outbox_of_the_first_development_version_gets_its_arrival_column(tmp_path):
    path = tmp_path / "x-outbox.db"
    with sqlite3.connect(path) as con:
        con.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
            "tenant TEXT NOT NULL, site TEXT NOT NULL, subscription TEXT NOT NULL, "
            "channel TEXT NOT NULL, subject TEXT NOT NULL, events TEXT NOT NULL, "
            "created_at INTEGER NOT NULL, due_at INTEGER NOT NULL, open_until INTEGER, "
            "attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending', "
            "last_error TEXT NOT NULL DEFAULT '', delivered_at INTEGER, first_event INTEGER);"
            "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
            "created_at, due_at) VALUES ('k', 't', 's', 't/x', '{}', 'x', '[]', 1, 1);"
            "PRAGMA user_version = 1;"
        )
    con.close()
    for _ in range(2):
        db = OutboxDB(path)
        assert db.query("SELECT key, arrival FROM outbox") == [("k", None)]
        assert db.query("PRAGMA user_version") == [(outboxdb.VERSION,)]
        assert db.query("SELECT COUNT(*) FROM timer_sent") == [(0,)]
        db.close()


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
    got = {bare(n["key"]): n for n in req.json()["notifications"]}
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
    # new rows, delivered: the escalation, and the calibration due after 29 days (a condition
    # of its own, not inhibited by the red alarm of the sensor)
    assert len(await rig.pump()) == 2
    rig.now = made_at + 30 * 86_400_000 + 1
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.01))
    try:

        async def pruned() -> bool:
            keys = {k for (k,) in rig.notifier.outbox.query("SELECT key FROM outbox")}
            return keys == {"north-coal/all:old", "north-coal/all:e3", "north-coal/all:e4"}

        for _ in range(200):
            if await pruned():
                break
            await asyncio.sleep(0.02)
        assert await pruned()
    finally:
        stop.set()
        await run


def test_the_hub_raises_a_behind_state_databases_ids_before_anything_journals(
    tmp_path, monkeypatch
):
    """The dispatcher journals at start (it clears the alarms of points gone while the hub was
    stopped): by then the outbox must have raised a state database's ids past its cursor, or
    those events would get ids already routed and never be sent."""
    import hazardhub.hub as hub_module
    from hazardhub.hub import HubSettings

    from e2e_helpers import mine_registry

    data = tmp_path / "hub"
    data.mkdir()
    StateDB(data / "state.db").close()  # a state database restored from an older backup
    ahead = OutboxDB(data / "state-outbox.db")
    with ahead.transaction() as con:
        con.execute("INSERT INTO notify_cursor VALUES ('route', 50), ('alarm', 7)")
    ahead.close()
    seen: list[tuple[int, ...]] = []
    real = hub_module.Dispatcher

    def dispatcher(registry, store, statedb, *args, **kwargs):
        seen.append(
            tuple(
                statedb.query(f"SELECT seq FROM sqlite_sequence WHERE name = '{t}'")[0][0]
                for t in ("alarm_events", "alarms")
            )
        )
        return real(registry, store, statedb, *args, **kwargs)

    monkeypatch.setattr(hub_module, "Dispatcher", dispatcher)
    hub = hub_module.Hub(mine_registry(1502, 1.0), HubSettings(data_dir=data, broker_port=1))
    try:
        assert seen == [(50, 7)]
    finally:
        hub.outbox.close()
        hub.statedb.close()
        hub.registrydb.close()


DAY = 86_400_000


def _restart(rig: Rig) -> None:
    """The hub restarted: a new pipeline on the same files (what it kept in memory is gone)."""
    rig.notifier.close()
    rig.notifier = rig.new_notifier()


def _chain(rig: Rig) -> None:
    step = {"after_s": 300, "channel": {"type": "sse"}}
    spec = EscalationPolicySpec.model_validate({"id": "chain", "steps": [step]})
    rig.notifier.put("escalation", "north-coal", spec, "op")
    rig.subscribe(id="duty", escalation="chain", match={"events": ["escalation"]})


async def test_an_escalation_step_pruned_is_not_sent_again_after_a_restart_or_a_shelve(rig):
    """helper-46: the outbox row of an alarm's last escalation step was what kept it from
    going again after a restart; pruned 30 days on (an alarm nobody acknowledged), the step
    went again. The keys sent are kept apart while the alarm waits."""
    _chain(rig)
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    await rig.pump()
    assert keys(await rig.pump(301)) == [f"north-coal/duty:x{raised.alarm_id}:0"]
    rig.now += 31 * DAY
    assert rig.notifier.prune() >= 1  # the step's row is gone
    _restart(rig)
    assert await rig.pump(1) == []
    # shelved and back: out of 'unack' meanwhile, the step is still not sent again
    rig.desk.act(
        raised.alarm_id, "shelve", actor="op", now=rig.now, until=rig.now + 600_000, note="x"
    )
    assert await rig.pump(1) == []
    rig.notifier.prune()  # keeps the keys of a shelved alarm
    rig.now += 601_000
    rig.desk.tick(rig.now)
    assert await rig.pump(1) == []
    # acknowledged by the enterprise and by the centre: its keys go at the next prune (while
    # one of them has not, the alarm still waits: its keys are kept)
    rig.desk.act(raised.alarm_id, "acknowledge", actor="coal", now=rig.now)
    rig.notifier.prune()
    assert rig.notifier.outbox.query("SELECT COUNT(*) FROM timer_sent") == [(1,)]
    rig.desk.act(raised.alarm_id, "acknowledge", actor="op", now=rig.now, centre=True)
    assert rig.notifier.outbox.query("SELECT COUNT(*) FROM timer_sent") == [(1,)]
    rig.notifier.prune()
    assert rig.notifier.outbox.query("SELECT COUNT(*) FROM timer_sent") == [(0,)]


async def test_a_repeat_longer_than_the_outbox_keeps_rows_is_not_sent_again(rig):
    rig.subscribe(id="rep", repeat_s=2 * 86400)
    keep_one_day = rig.notifier.settings.model_copy(update={"outbox_keep_days": 1.0})
    rig.notifier.settings = keep_one_day
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    await rig.pump()
    notes = await rig.pump(2 * 86400 + 1)
    assert keys(notes) == [f"north-coal/rep:r{raised.alarm_id}:1"]
    rig.now += int(1.1 * DAY)
    assert rig.notifier.prune() >= 1
    _restart(rig)
    rig.notifier.settings = keep_one_day
    assert await rig.pump(1) == []


async def test_a_receiver_gets_at_most_eight_requests_at_once_and_every_due_row_once(rig):
    """One try per due row in one delivery turn, by a few workers per receiver: the receiver
    never has more than the channel's 8 requests in flight."""
    inflight, peak, keys = 0, 0, []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal inflight, peak
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if line
                )
                await reader.readexactly(int(fields["Content-Length"]))
                keys.append(fields["Idempotency-Key"])
                inflight += 1
                peak = max(peak, inflight)
                await asyncio.sleep(0.05)
                inflight -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        rig.subscribe(id="all", channel={"type": "webhook", "url": f"http://127.0.0.1:{port}/"})
        for sensor in ("ch4-t1", "ch4-t2", "co"):
            rig.feed(sensor, [0.0, 40.0, 0.0, 40.0, 0.0])  # raised, cleared, raised, cleared
        made = rig.notifier.route()
        assert made >= 12
        assert await rig.notifier.deliver_due() == made
        await rig.notifier._senders.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert sorted(keys) == sorted(set(keys)) and len(keys) == made
    assert 2 <= peak <= 8


async def test_only_an_alarms_latest_repeat_key_is_kept(rig):
    rig.subscribe(id="rep", repeat_s=60)
    rig.subscribe(id="other", repeat_s=90)
    (raised,) = rig.feed("ch4-t1", [0.3, 1.1])
    await rig.pump()
    for _ in range(3):
        await rig.pump(60)
    a = raised.alarm_id
    kept = sorted(k for (k,) in rig.notifier.outbox.query("SELECT key FROM timer_sent"))
    assert kept == [f"north-coal/other:r{a}:2", f"north-coal/rep:r{a}:3"]
    _restart(rig)
    assert await rig.pump(1) == []  # the latest one is still not sent again


class _Hanging:
    """A webhook receiver that takes each request and never answers (a broken duty system)."""

    def __init__(self) -> None:
        self.got = asyncio.Event()  # a request came
        self._held: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    @classmethod
    async def start(cls) -> _Hanging:
        self = cls()
        self._server = await asyncio.start_server(self._hang, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/duty"
        return self

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self._held.append(writer)
        self.got.set()
        await asyncio.sleep(3600)

    def close(self) -> None:
        for w in self._held:
            w.close()
        if self._server is not None:
            self._server.close()


async def test_a_receiver_that_never_answers_holds_up_only_its_own_notifications(rig):
    """A webhook receiver that takes the request and never answers (a tenant's broken duty
    system) keeps its own rows in flight for its timeout; the pipeline goes on routing and
    delivering everyone else's meanwhile, instead of waiting for the whole round."""
    hanging = await _Hanging.start()
    url, got = hanging.url, hanging.got
    rig.subscribe(id="slow", channel={"type": "webhook", "url": url, "timeout_s": 30})
    rig.subscribe(id="fast")  # the SSE stream of the monitoring centre
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.05))
    try:
        rig.feed("ch4-t1", [0.3, 1.1])
        rig.notifier.wake.set()
        await asyncio.wait_for(got.wait(), 10)  # the slow receiver holds its request
        rig.feed("co", [0.0, 40.0])  # a new alarm while it hangs

        def fast_keys() -> list[str]:
            return sorted(n.key.split(":")[0] for n in rig.sent)

        for _ in range(200):  # up to 10 s on a busy machine
            if len(rig.sent) >= 2:
                break
            rig.notifier.wake.set()
            await asyncio.sleep(0.05)
        assert fast_keys() == ["north-coal/fast", "north-coal/fast"]
        assert [e["sensor"] for n in rig.sent for e in n.body["events"]] == ["ch4-t1", "co"]
        slow = rig.notifier.outbox.query(
            "SELECT status, attempts FROM outbox WHERE subscription = 'north-coal/slow'"
        )
        assert slow == [("pending", 0), ("pending", 0)]  # in flight: no outcome yet
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)  # the hanging send is given up at the stop
        hanging.close()
        await rig.notifier._senders.aclose()
    # what was not sent stays pending, for the next start
    rows = rig.notifier.outbox.query("SELECT status FROM outbox WHERE subscription LIKE '%slow'")
    assert rows == [("pending",), ("pending",)]


async def _another_alarm_goes_out(rig: Rig) -> None:
    """A CO alarm raised now reaches its (stream) subscription, alone, while the webhook hangs:
    up to 10 s on a busy machine."""
    rig.feed("co", [0.0, 40.0])
    for _ in range(200):
        if rig.sent:
            break
        rig.notifier.wake.set()
        await asyncio.sleep(0.05)
    assert [e["sensor"] for n in rig.sent for e in n.body["events"]] == ["co"]


async def _two_hanging_then_the_stream(rig, cycles: int, held: Callable[[], None]) -> None:
    """Two of the tenant's webhook receivers hang on `cycles` methane raise/clear pairs; once
    every worker is in its request (`held` checks the state then), a CO alarm must reach the
    tenant's stream (SSE) all the same."""
    one, two = await _Hanging.start(), await _Hanging.start()
    for name, hook in (("one", one), ("two", two)):
        channel = {"type": "webhook", "url": hook.url, "timeout_s": 30}
        rig.subscribe(id=name, channel=channel, match={"sensor_kinds": ["methane"]})
    rig.subscribe(id="wall", match={"sensor_kinds": ["co"]})
    rig.feed("ch4-t1", [0.3, 1.1] * cycles)
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.05))
    try:
        await asyncio.wait_for(asyncio.gather(one.got.wait(), two.got.wait()), 10)
        for _ in range(100):  # every worker in its request (up to 5 s on a busy machine)
            await asyncio.sleep(0.05)
            with contextlib.suppress(AssertionError):
                held()
                break
        held()
        await _another_alarm_goes_out(rig)
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)
        one.close()
        two.close()
        await rig.notifier._senders.aclose()


async def test_a_tenants_hanging_webhooks_never_hold_up_its_stream_nor_mqtt(rig):
    """Two of a tenant's receivers hang with 8 requests each: the tenant's whole share of tries
    in flight (a quarter of max_in_flight, 16). Its browsers' stream is the hub's own: it
    counts against no share and is still sent at once. The share follows the setting."""

    def all_sixteen() -> None:  # 9 events: 8 requests held by each
        # (the rig's subscriptions are the centre's: the tenant's share of the centre's rows)
        assert rig.notifier.delivery._tenant_slot("north-coal|centre").locked()

    await _two_hanging_then_the_stream(rig, 5, all_sixteen)
    delivery = rig.notifier.delivery
    delivery.settings = delivery.settings.model_copy(update={"max_in_flight": 256})
    share = delivery._tenant_slot("north-coal|centre")
    for _ in range(64):  # 256 // 4 tries for one tenant now, not the 16 of before
        await asyncio.wait_for(share.acquire(), 1)
    assert share.locked()


async def test_a_tenants_hanging_webhooks_filling_its_rows_never_hold_up_its_stream(rig):
    """With few slots (max_in_flight 4: a take of 32 rows), two hanging receivers of a tenant
    queue a take's worth of rows each, the tenant's whole share of queued rows, and hold every
    slot: its stream's rows are still taken and sent (the hub's own channels count against no
    share), and a webhook at a host called `sse` is not taken for the stream."""
    delivery = rig.notifier.delivery
    delivery.settings = delivery.settings.model_copy(update={"max_in_flight": 4})

    def each_a_take() -> None:  # 79 rows for each hanging receiver: a take's worth queued
        assert sorted(delivery._rows.values()) == [32, 32]

    await _two_hanging_then_the_stream(rig, 40, each_a_take)
    assert delivery._receiver('{"type": "webhook", "url": "http://sse/x"}') != delivery._receiver(
        '{"type": "sse"}'
    )


async def test_rows_of_a_receiver_with_no_room_are_not_taken_so_others_are_not_starved(rig):
    """More rows for a hanging receiver than four takes hold, routed before anyone else's: its
    queue fills (a take's worth), and the takes after leave its rows in the outbox instead of
    filling up with them, so the next tenant's or channel's rows are taken and sent."""
    hanging = await _Hanging.start()
    url, got = hanging.url, hanging.got
    rig.subscribe(
        id="slow",
        match={"sensor_kinds": ["methane"]},
        channel={"type": "webhook", "url": url, "timeout_s": 30},
    )
    rig.subscribe(id="fast", match={"sensor_kinds": ["co"]})
    limit = rig.notifier.delivery.take_limit
    rig.feed("ch4-t1", [0.3, 1.1] * (2 * limit))  # 4 takes of rows for the hanging receiver
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.05))
    try:
        await asyncio.wait_for(got.wait(), 10)
        await _another_alarm_goes_out(rig)
        # the hanging receiver's share, no more (the CO row sent is counted out a moment after
        # its receiver has it: 513 once on a loaded machine): the first take's 500 rows (one
        # routing's), not topped up to 512 (a receiver is taken for again once it has room
        # for a quarter take)
        for _ in range(100):
            if rig.notifier.delivery.in_flight == 500:
                break
            await asyncio.sleep(0.02)
        assert rig.notifier.delivery.in_flight == 500 < limit
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)
        hanging.close()
        await rig.notifier._senders.aclose()


async def test_takes_behind_a_busy_receiver_read_a_few_rows_and_all_once_a_second(rig):
    """With a receiver full, a take that reads every pending row finds none of its (a backlog
    of 30,000: 30 ms a take, the notifier's busiest line at 10,000 transitions/s): the takes
    read the first two takes' worth of due rows, and all of them at most once a second; the
    rows of another receiver behind the backlog go out all the same (the test above)."""
    hanging = await _Hanging.start()
    rig.subscribe(
        id="slow",
        match={"sensor_kinds": ["methane"]},
        channel={"type": "webhook", "url": hanging.url, "timeout_s": 30},
    )
    delivery = rig.notifier.delivery
    limit = delivery.take_limit
    rig.feed("ch4-t1", [0.3, 1.1] * (2 * limit))
    store = rig.notifier.store
    take = store.take_due
    scans: list[int | None] = []  # of the takes with a receiver full

    def counted(now, limit, taken=(), full=(), tenants=(), **kw):  # type: ignore[no-untyped-def]
        if full:
            scans.append(kw.get("scan"))
        return take(now, limit, taken, full, tenants, **kw)

    store.take_due = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.01))
    try:
        await asyncio.wait_for(hanging.got.wait(), 10)
        started = asyncio.get_running_loop().time()
        while len(scans) < 20:
            rig.notifier.wake.set()
            await asyncio.sleep(0.01)
        took = asyncio.get_running_loop().time() - started
        # the receiver is full (one routing's 500 rows, past a quarter take's room): its rows
        # are excluded
        assert delivery.in_flight == 500
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)
        hanging.close()
        await rig.notifier._senders.aclose()
    assert scans[0] is None  # the first reads all
    assert set(scans[1:]) <= {2 * limit, None} and scans.count(2 * limit) >= 10
    assert scans.count(None) <= 1 + int(took) + 1  # then one a second
    # and the store's capped take looks no further than its first rows
    due = [r[0] for r in take(rig.now + 10**9, 10**6)]
    assert len(take(rig.now + 10**9, 10**6, scan=5)) == 5
    # (of the first due rows not in flight)
    assert [r[0] for r in take(rig.now + 10**9, 10**6, due[:3], scan=5)] == due[3:8]


async def test_rows_behind_a_hanging_backlog_flow_not_one_take_a_second(rig):
    """helper-147: with the takes behind a full receiver capped, the rows of the others queued
    behind its backlog went out one take's worth a second (the full scan's rhythm): a full scan
    that finds a whole take's worth is followed by another at once."""
    delivery = rig.notifier.delivery
    delivery.settings = delivery.settings.model_copy(update={"max_in_flight": 4})
    limit = delivery.take_limit  # 32
    hanging = await _Hanging.start()
    rig.subscribe(
        id="slow",
        match={"sensor_kinds": ["methane"]},
        channel={"type": "webhook", "url": hanging.url, "timeout_s": 30},
    )
    rig.subscribe(id="fast", match={"sensor_kinds": ["co"]})
    rig.feed("ch4-t1", [0.3, 1.1] * (4 * limit))  # the hanging receiver's backlog, first
    stop = asyncio.Event()
    run = asyncio.create_task(rig.notifier.run(stop, period_s=0.01))
    try:
        await asyncio.wait_for(hanging.got.wait(), 10)
        rig.feed("co", [0.0, 40.0] * (4 * limit))  # the stream's rows, behind the backlog
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while len(rig.sent) < 8 * limit - 1 and loop.time() - t0 < 10:
            rig.notifier.wake.set()
            await asyncio.sleep(0.01)
        took = loop.time() - t0
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)
        hanging.close()
        await rig.notifier._senders.aclose()
    assert len(rig.sent) == 8 * limit - 1  # every raise and clear of CO
    assert took < 2.5, took  # capped, 256 rows took 8 s (32 a second)


async def test_keys_name_the_installation_so_a_hub_started_afresh_repeats_none(tmp_path):
    """A hub started on a fresh data folder numbers its events from 1 again: its keys carry an
    id of their own, or a receiver dropping repeats by key (as alarms.md advises) would drop
    its new alarms as repeats of the old hub's. Kept over a restart on the same folder."""

    async def first_key(folder) -> tuple[Rig, str]:
        folder.mkdir()
        rig = Rig(folder)
        rig.subscribe(id="all")
        rig.feed("ch4-t1", [0.3, 1.1])
        (note,) = await rig.pump()
        # the outbox list shows the key as it was sent
        assert [r[1] for r in rig.notifier.store.outbox(None)] == [note.key]
        return rig, note.key

    old, key = await first_key(tmp_path / "old")
    assert bare(key) == "north-coal/all:e1"
    old.notifier.close()
    again = Rig(tmp_path / "old")  # a restart: the same installation
    again.feed("ch4-t1", [1.6])
    (later,) = await again.pump()
    assert later.key.rpartition("@")[2] == key.rpartition("@")[2]
    again.notifier.close()
    _, fresh = await first_key(tmp_path / "new")
    assert bare(fresh) == bare(key) and fresh != key
