"""What the hub says of telemetry it never received (a device's seq jumped: the broker dropped
batches, its queue for the hub full, helpers 91 and 92), and that a refused message waits for a
locked state database instead of stopping the hub (helper-91)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import aiomqtt
import httpx
from test_bad_input import GOOD_TOPIC, batch

from alerts.statedb import StateDB
from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from ingest.flush import Flushing
from ingest.metrics import Metrics
from ingest.pipeline import SeenSeqs
from ingest.statedbfault import StateDbFault
from telemetry.config import ApiKeySpec
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, mine_registry, running_hub
from services import free_port


def test_the_seqs_a_device_jumped_past_are_counted_once() -> None:
    seen = SeenSeqs()
    dev = ("north-coal", "face-1301", "kj-sub-3")
    assert [seen.add((dev, 5, s)) for s in (0, 1, 2)] == [0, 0, 0]
    assert seen.add((dev, 5, 6)) == 3  # 3, 4 and 5 never came
    assert seen.add((dev, 5, 4)) == 0  # one of them late: not counted again
    assert seen.add((dev, 5, 7)) == 0
    assert seen.add((dev, 6, 0)) == 0  # the gateway started again: a new epoch from 0
    assert seen.add((dev, 6, 2)) == 1


async def test_a_gap_in_a_devices_seqs_is_counted_and_said(mosquitto, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.service")
    port = free_port()
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
        extra_keys=[ApiKeySpec(name="a", sha256=hash_key("k-admin"), role="admin")],
    )
    async with running_hub(hub):
        now = time.time_ns() // 1_000_000
        sent = [*range(5), *range(1_000_005, 1_000_010)]  # a million batches dropped
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
            for seq in sent:
                await mq.publish(GOOD_TOPIC, batch(seq, now, ts=now - 20_000 + seq % 1000), qos=1)

        async def all_stored():
            stored = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return stored if set(sent) <= {s for _, s in stored} else None

        await eventually(all_stored, 15, "every batch sent stored")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k-admin"}
        ) as api:
            metrics = (await api.get("/metrics")).text
    # to the unit: `:g` said 1e+06
    assert "hazardhub_telemetry_batches_missing_total 1000000\n" in metrics, metrics
    # how far behind: the readings were measured 19-20 s before `now`, judged a moment later
    assert "# TYPE hazardhub_ingest_lag_seconds gauge" in metrics
    lag = float(metrics.split("\nhazardhub_ingest_lag_seconds ")[1].split("\n")[0])
    wait = float(metrics.split("\nhazardhub_ingest_wait_seconds ")[1].split("\n")[0])
    assert 19 < lag < 40 and 0 <= wait < 10, (lag, wait)
    said = [r.getMessage() for r in caplog.records if "never reached the judge" in r.getMessage()]
    assert len(said) == 1 and "north-coal/face-1301/kj-sub-3: 1000000 batch(es)" in said[0]


async def test_a_dead_letter_waits_for_a_locked_state_database(tmp_path) -> None:
    """A refused message while another process held the state database's lock stopped the
    hub (AlarmStoreError out of the flush): it is kept once the lock is gone."""
    db = StateDB(tmp_path / "state.db")
    flushing = Flushing()
    flushing.statedb, flushing.metrics, flushing.layout = db, Metrics(), TopicLayout()
    flushing.state_db_fault = StateDbFault()
    message = aiomqtt.Message(GOOD_TOPIC, b"garbage", 1, False, 1, None)
    holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(
            flushing._dead_letter(message, "telemetry", "decode_error", stop)
        )

        async def retried() -> bool:
            return flushing.metrics.get("hazardhub_store_retries_total") >= 1

        await eventually(retried, 15, "a retry")
        assert not task.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await asyncio.wait_for(task, 15)
    (letter,) = db.dead_letters(limit=10)
    assert (letter.reason, letter.topic) == ("decode_error", GOOD_TOPIC)
    db.close()


async def test_a_hub_stopping_while_its_state_database_fails_leaves_the_message_unacknowledged(
    tmp_path,
) -> None:
    """The retry of a dead letter does not hold a stopping hub forever (helper-97): at stop it
    gives up, the flush does not acknowledge, the broker delivers the message again."""
    db = StateDB(tmp_path / "state.db")
    db._db.execute("PRAGMA query_only = 1")  # every write refused at once
    flushing = Flushing()
    flushing.statedb, flushing.metrics, flushing.layout = db, Metrics(), TopicLayout()
    flushing.state_db_fault = StateDbFault()
    message = aiomqtt.Message(GOOD_TOPIC, b"garbage", 1, False, 1, None)
    stop = asyncio.Event()
    task = asyncio.create_task(flushing._dead_letter(message, "telemetry", "decode_error", stop))

    async def retried() -> bool:
        return flushing.metrics.get("hazardhub_store_retries_total") >= 2

    await eventually(retried, 10, "retries")
    assert not task.done()
    stop.set()
    assert await asyncio.wait_for(task, 10) is False
    db._db.execute("PRAGMA query_only = 0")
    assert db.dead_letters(limit=10) == []
    db.close()


def test_gaps_of_many_devices_are_all_counted_and_said_twenty_a_minute(caplog, monkeypatch) -> None:
    """A broker that dropped the queue of many devices made a warning per device at once
    (helper-97): twenty a minute are said one by one, the rest counted and summed up once."""
    import ingest.flush

    caplog.set_level(logging.WARNING, logger="ingest.service")
    clock = [600.0]
    monkeypatch.setattr(ingest.flush.time, "monotonic", lambda: clock[0])
    flushing = Flushing()
    flushing.metrics = Metrics()
    for n in range(25):
        flushing._missing((("t", "s", f"dev-{n}"), 1, 10), 2)
    assert flushing.metrics.get("hazardhub_telemetry_batches_missing_total") == 50
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 20 and all("never reached the judge" in m for m in said)
    clock[0] += 60  # the next minute: the five not said are summed up, the new gap said
    flushing._missing((("t", "s", "dev-x"), 1, 10), 1)
    said = [r.getMessage() for r in caplog.records][20:]
    assert said[0] == "and 5 more device gap(s) in the minute before, not said"
    assert "dev-x" in said[1] and len(said) == 2


async def test_a_gap_across_a_hub_restart_is_counted_and_said(mosquitto, tmp_path, caplog) -> None:
    """Batches lost while the hub was away (a broker restarted meanwhile lost its queue) went
    uncounted: the seqs seen lived in memory only (helper-149). The newest judged is kept in the
    data folder, and the first batch after the restart is compared with it."""
    caplog.set_level(logging.WARNING, logger="ingest.service")
    port = free_port()

    def hub() -> Hub:
        return Hub(
            mine_registry(1502, 1.0),
            HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=port),
            extra_keys=[ApiKeySpec(name="a", sha256=hash_key("k-admin"), role="admin")],
        )

    async def publish(*seqs: int) -> None:
        now = time.time_ns() // 1_000_000
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mq:
            for seq in seqs:
                await mq.publish(GOOD_TOPIC, batch(seq, now, ts=now - 5_000 + seq), qos=1)

    first = hub()
    async with running_hub(first):
        await publish(*range(5))

        async def stored_first() -> bool:
            return first.metrics.get("hazardhub_messages_total", kind="telemetry") >= 5

        await eventually(stored_first, 15, "seq 0-4 judged")
    assert first.metrics.get("hazardhub_telemetry_batches_missing_total") == 0
    # seq 5-9 never reach the broker while the hub is away; seq 10 is the first after
    second = hub()
    async with running_hub(second):
        await publish(10)

        async def counted() -> float:
            return second.metrics.get("hazardhub_telemetry_batches_missing_total")

        assert await eventually(counted, 15, "the gap counted") == 5
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k-admin"}
        ) as api:
            metrics = (await api.get("/metrics")).text
    assert "hazardhub_telemetry_batches_missing_total 5\n" in metrics
    said = [r.getMessage() for r in caplog.records if "never reached the judge" in r.getMessage()]
    assert (
        said == [said[0]]
        and "north-coal/face-1301/kj-sub-3: 5 batch(es) before seq 10 (gateway epoch 5)" in said[0]
    )


def test_the_seq_journal_is_never_behind_what_was_acknowledged(tmp_path) -> None:
    """Read back as written, a torn last line (a kill -9 mid-write) skipped, devices no longer
    configured dropped, and rewritten whole once it outgrows its bound."""
    from ingest.seqjournal import SeqJournal

    path = tmp_path / "seqs.jsonl"
    a, b = ("t", "s", "a"), ("t", "s", "b")
    seen = SeenSeqs()
    journal = SeqJournal(path, seen, compact_bytes=400)
    for seq in range(30):
        seen.add((a, 1, seq))
        journal.record([(a, 1)])
    seen.add((b, 7, 3))
    seen.add((("t", "s", "gone"), 1, 5))
    journal.record([(b, 7), (("t", "s", "gone"), 1)])
    assert path.stat().st_size < 400  # rewritten whole once past it
    with path.open("ab") as f:
        f.write(b'["t","s","a",1,9')  # torn
    again = SeenSeqs()
    SeqJournal(path, again, known=lambda dev: dev != ("t", "s", "gone"))
    assert again.high(a, 1) == 29 and again.high(b, 7) == 3
    assert again.high(("t", "s", "gone"), 1) is None
    assert again.add((a, 1, 33)) == 3
    assert again.add((a, 1, 20)) == 0  # below: judged late, never a gap
    journal.close()


def test_the_seq_journal_keeps_the_last_128_seqs_judged(tmp_path) -> None:
    """A copy of a batch judged before the restart, sent again after it (a gateway's re-send of
    its unacknowledged window), is a duplicate when it is among the 128 seqs up to the newest;
    one further below, or one never judged, is not. A line of an older hub (its seq alone) is
    read as before."""
    from ingest.seqjournal import KEPT_SEQS, SeqJournal

    path = tmp_path / "seqs.jsonl"
    a, b = ("t", "s", "a"), ("t", "s", "b")
    seen = SeenSeqs()
    journal = SeqJournal(path, seen)
    for seq in [*range(200), 201, 203]:  # 200 and 202 never came
        seen.add((a, 1, seq))
        journal.record([(a, 1)])
    journal.close()
    with path.open("ab") as f:
        f.write(b'["t","s","b",4,9]\n')  # an older hub's
    again = SeenSeqs()
    SeqJournal(path, again).close()
    newest = 203
    for seq in range(newest + 1):
        kept = seq not in (200, 202) and newest - seq < KEPT_SEQS
        assert ((a, 1, seq) in again) is kept, seq
    assert (b, 4, 9) in again and (b, 4, 8) not in again
    assert again.add((a, 1, 204)) == 0  # no gap
    # the file rewritten at the start, read once more: the same
    third = SeenSeqs()
    SeqJournal(path, third).close()
    assert [(a, 1, s) in third for s in range(newest + 1)] == [
        (a, 1, s) in again for s in range(newest + 1)
    ]
