"""The dispatcher judges in place: when the alarm book fails to record a batch's transitions,
they wait and are recorded once, by the retry of that batch or before the next one; the readings
are never judged twice and no alarm is lost."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from test_dispatch_lateness import T0, batch, registry

from alerts.errors import AlarmStoreError
from alerts.statedb import StateDB
from alerts.table import ABOVE, FAULT
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.sqlite import SqliteStore


class FailOnce:
    """The real alarm book, whose next `apply` raises as a locked or full database would (with
    `after`: the one after that many more succeed)."""

    def __init__(self, apply):
        self.apply, self.armed, self.calls, self.after = apply, False, 0, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.armed and self.after:
            self.after -= 1
        elif self.armed:
            self.armed = False
            raise AlarmStoreError("database is locked")
        return self.apply(*args, **kwargs)


@pytest.mark.parametrize("retry_same_batch", [True, False])
async def test_transitions_the_book_failed_to_record_are_recorded_once(tmp_path, retry_same_batch):
    i, db, store, d = await _dispatcher(tmp_path)  # three in a row at 1.0 raise
    metrics = d.metrics
    fail = FailOnce(d.book.apply)
    d.book.apply = fail  # type: ignore[method-assign]
    try:
        events = []
        for seq in range(2):
            events += await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq)
        assert events == []
        third, positions = batch(i, T0 + 2000, 1.5, 2), []  # the service retries with both
        fail.armed = True
        with pytest.raises(AlarmStoreError):
            await d.judge(third, positions, T0 + 2000)
        # nothing recorded yet: the state database has no alarm
        assert db.active_alarms() == []
        if retry_same_batch:
            events += await d.judge(third, positions, T0 + 2100)
        else:  # the session broke: the next batch comes, the third is not retried
            events += await d.judge(batch(i, T0 + 3000, 0.5, 3), [], T0 + 3000)
        got = [(e.kind, e.ts) for e in events]
        expected = [("raised", T0 + 2000)]
        if not retry_same_batch:
            expected.append(("cleared", T0 + 3000))
        assert got == expected
        assert len(db.active_alarms()) == (1 if retry_same_batch else 0)
        # the readings were judged once: none counted late, each counted once
        assert metrics.total("hazardhub_readings_late_total") == 0
        assert metrics.total("hazardhub_readings_total") == (3 if retry_same_batch else 4)
        # a redelivery of the third reading is late now, not a second raise
        again = await d.judge(batch(i, T0 + 2000, 1.5, 2), [], T0 + 4000)
        assert again == []
        assert metrics.total("hazardhub_readings_late_total") == 1
    finally:
        await store.close()
        db.close()


async def _dispatcher(tmp_path):
    reg = registry(0.0)
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    return reg.sensor("t1").index, db, store, Dispatcher(reg, store, db, Metrics())


async def test_a_failure_after_judging_keeps_the_transitions(tmp_path):
    """A listener failing after the readings were judged in place (or the flush cancelled
    there): the transitions are already waiting, and the next batch records them first."""
    i, db, store, d = await _dispatcher(tmp_path)
    calls = []

    def listener(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("a listener failed")

    d.reading_listeners.append(listener)
    try:
        for seq in range(2):
            assert await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq) == []
        with pytest.raises(RuntimeError):
            await d.judge(batch(i, T0 + 2000, 1.5, 2), [], T0 + 2000)
        # the failed batch is dropped by its caller (a new session gets it again, as new objects)
        events = await d.judge(batch(i, T0 + 3000, 0.5, 3), [], T0 + 3000)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
    finally:
        await store.close()
        db.close()


async def test_a_caller_cancelled_while_the_book_records_does_not_record_twice(tmp_path):
    i, db, store, d = await _dispatcher(tmp_path)
    real = d.book.apply
    started = threading.Event()

    def slow(*args, **kwargs):
        started.set()
        time.sleep(0.3)  # the book's transaction, committing after the caller is gone
        return real(*args, **kwargs)

    try:
        for seq in range(2):
            await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq)
        d.book.apply = slow  # type: ignore[method-assign]
        task = asyncio.create_task(d.judge(batch(i, T0 + 2000, 1.5, 2), [], T0 + 2000))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        d.book.apply = real  # type: ignore[method-assign]
        events = await d.judge(batch(i, T0 + 3000, 1.6, 3), [], T0 + 3000)
        # the recording that went on is taken once: one raise, one active alarm
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000)]
        assert len(db.active_alarms()) == 1
    finally:
        await store.close()
        db.close()


async def test_a_core_failure_leaves_no_half_written_state(tmp_path, monkeypatch):
    """Should the core fail on a batch (a bug), the in-place state is rebuilt from the active
    alarms, as after a restart, and judging goes on from there."""
    import ingest.dispatch

    i, db, store, d = await _dispatcher(tmp_path)
    try:
        for seq in range(3):
            await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq)
        assert int(d.state.level[i, ABOVE]) == 1

        def broken(table, readings, state, now, inplace=False):
            state.level[:] = 3  # written halfway, then the bug
            raise RuntimeError("a bug in the core")

        monkeypatch.setattr(ingest.dispatch, "evaluate", broken)
        with pytest.raises(RuntimeError, match="a bug"):
            await d.judge(batch(i, T0 + 3000, 1.5, 3), [], T0 + 3000)
        monkeypatch.undo()
        assert d.metrics.total("hazardhub_core_failures_total") == 1
        assert d.state.level[:, ABOVE].tolist() == [1 if k == i else 0 for k in range(d.table.size)]
        assert int(d.state.level[:, FAULT].max()) == 0
        events = await d.judge(batch(i, T0 + 4000, 0.5, 4), [], T0 + 4000)
        assert [(e.kind, e.ts) for e in events] == [("cleared", T0 + 4000)]
    finally:
        await store.close()
        db.close()


async def _hold_a_raise(d, i, fail):
    """Batch 2's raise fails to record; batch 3 records it (holding its event) and fails to
    record its own clear. Returns batch 3 and its positions (a retry passes the very same)."""
    for seq in range(2):
        assert await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq) == []
    fail.armed = True
    with pytest.raises(AlarmStoreError):
        await d.judge(batch(i, T0 + 2000, 1.5, 2), [], T0 + 2000)
    fail.armed, fail.after = True, 1
    third, positions = batch(i, T0 + 3000, 0.5, 3), []
    with pytest.raises(AlarmStoreError):
        await d.judge(third, positions, T0 + 3000)
    return third, positions


async def test_events_held_by_a_batch_never_retried_are_handed_on(tmp_path):
    """A batch takes the events recorded for the batch before it, then fails itself; its session
    ends and it is never retried. Those events go on with the next batch (to the MQTT alarm
    topic and the time-series store), instead of vanishing with the failed batch."""
    i, db, store, d = await _dispatcher(tmp_path)  # three in a row at 1.0 raise
    d.book.apply = fail = FailOnce(d.book.apply)  # type: ignore[method-assign]
    try:
        await _hold_a_raise(d, i, fail)  # batch 3 is not retried
        events = await d.judge(batch(i, T0 + 4000, 0.5, 4), [], T0 + 4000)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
        stored = await store.alarm_events(None, T0, T0 + 5000)
        assert [(e.kind, e.ts) for e in stored] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
    finally:
        await store.close()
        db.close()


async def test_a_reload_hands_on_the_events_a_failed_batch_held(tmp_path):
    """The session ends (the failed batch is never retried) and a configuration reload runs
    first: the held raise goes on with the reload's events, before the clear (found by review:
    the reload used to forget it, and subscribers saw a clear with no raise)."""
    i, db, store, d = await _dispatcher(tmp_path)
    d.book.apply = fail = FailOnce(d.book.apply)  # type: ignore[method-assign]
    try:
        await _hold_a_raise(d, i, fail)
        events = d.reload(d.registry, T0 + 4000)
        events += await d.judge(batch(i, T0 + 5000, 0.4, 4), [], T0 + 5000)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
    finally:
        await store.close()
        db.close()


async def test_a_retried_batch_writes_the_events_it_held_to_the_store(tmp_path):
    """The retry of the failed batch hands on the raise it held and its own clear, and writes
    both to the time-series store (it used to write only the clear)."""
    i, db, store, d = await _dispatcher(tmp_path)
    d.book.apply = fail = FailOnce(d.book.apply)  # type: ignore[method-assign]
    try:
        third, positions = await _hold_a_raise(d, i, fail)
        events = await d.judge(third, positions, T0 + 3100)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
        stored = await store.alarm_events(None, T0, T0 + 5000)
        assert [(e.kind, e.ts) for e in stored] == [("raised", T0 + 2000), ("cleared", T0 + 3000)]
    finally:
        await store.close()
        db.close()


async def test_events_recorded_by_a_tick_that_fails_later_are_handed_on_by_the_next(tmp_path):
    """A tick records what waited (here: a batch the book failed to record), then the desk's
    clock fails: those events are journaled, and the next tick hands them on."""
    i, db, store, d = await _dispatcher(tmp_path)
    fail = FailOnce(d.book.apply)
    d.book.apply = fail  # type: ignore[method-assign]
    real_tick = d.desk.tick
    try:
        for seq in range(2):
            await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq)
        fail.armed = True
        with pytest.raises(AlarmStoreError):
            await d.judge(batch(i, T0 + 2000, 1.5, 2), [], T0 + 2000)

        def desk_fails(*args, **kwargs):
            raise AlarmStoreError("database is locked")

        d.desk.tick = desk_fails  # type: ignore[method-assign]
        with pytest.raises(AlarmStoreError):
            await d.tick(T0 + 2500)
        assert len(db.active_alarms()) == 1  # recorded by the failed tick
        d.desk.tick = real_tick  # type: ignore[method-assign]
        events = await d.tick(T0 + 2600)
        assert [(e.kind, e.ts) for e in events] == [("raised", T0 + 2000)]
        assert await d.tick(T0 + 2700) == []
    finally:
        await store.close()
        db.close()


async def test_a_tick_cancelled_while_the_desk_runs_hands_its_events_on_later(tmp_path):
    """The clock's tick cancelled (its session ended) while the desk's step runs in its thread:
    the step commits, and its events (a shelve expired) go on with the next caller instead of
    vanishing; nothing judges meanwhile."""
    i, db, store, d = await _dispatcher(tmp_path)
    started, release = threading.Event(), threading.Event()
    try:
        events = []
        for seq in range(3):
            events += await d.judge(batch(i, T0 + 1000 * seq, 1.5, seq), [], T0 + 1000 * seq)
        (raised,) = events
        d.desk.act(
            raised.alarm_id, "shelve", actor="op", now=T0 + 3000, until=T0 + 5000, note="work"
        )
        real = d.desk.tick

        def slow(*args, **kwargs):
            started.set()
            release.wait(5)  # the desk's transaction, committing after the caller is gone
            return real(*args, **kwargs)

        d.desk.tick = slow  # type: ignore[method-assign]
        tick = asyncio.create_task(d.tick(T0 + 6000))
        await asyncio.to_thread(started.wait, 5)
        tick.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tick
        d.desk.tick = real  # type: ignore[method-assign]
        # the next batch waits for the step (the core's state is not judged under it)
        judging = asyncio.create_task(d.judge(batch(i, T0 + 7000, 1.6, 7), [], T0 + 7000))
        await asyncio.sleep(0.2)
        assert not judging.done()
        release.set()
        later = await judging
        assert [e.kind for e in later] == ["unshelved"]
        assert (await d.tick(T0 + 8000)) == []  # handed on once
    finally:
        release.set()
        await store.close()
        db.close()
