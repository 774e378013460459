"""What a delivery take reads: its rows without their subject and events, and those of the rows
there is room for after; a receiver is taken for again once a quarter take's worth of its rows
has gone (a receiver with a little room had a whole take of its backlog read, whole, at every
take to queue a few rows: 9 of 10 rows read in bench/notify.py once it fell behind)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from alerts.notify.channels import Notification

from notify_rig import Rig


async def test_a_take_reads_the_texts_of_the_rows_it_has_room_for(rig: Rig) -> None:
    delivery = rig.notifier.delivery
    delivery.settings = delivery.settings.model_copy(update={"max_in_flight": 4})
    limit = delivery.take_limit  # 32: the rows of one receiver queued or being sent
    gate = asyncio.Semaphore(0)
    sent: list[Notification] = []

    async def held(n: Notification) -> None:  # the stream, one notification per release
        await gate.acquire()
        sent.append(n)

    delivery._senders._sse_publish = held
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1] * limit)  # 32 raises, 31 clears
    rig.notifier.route()
    store = rig.notifier.store
    texts_of, take_due = store.texts_of, store.take_due
    read: list[list[int]] = []
    taken: list[list[int]] = []

    def reading(ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        read.append(list(ids))
        return texts_of(ids)

    def taking(*args: object, **kw: object) -> list[tuple[object, ...]]:
        rows = take_due(*args, **kw)  # type: ignore[arg-type]
        taken.append([r[0] for r in rows])  # type: ignore[misc]
        assert all(r[6] == r[7] == "" for r in rows)  # no subject, no events
        return rows

    store.texts_of = reading  # type: ignore[method-assign]
    store.take_due = taking  # type: ignore[method-assign]
    await delivery.deliver_due(wait=False)
    assert read == taken == [taken[0]] and len(taken[0]) == limit
    for n in (3, 8):
        for _ in range(n - len(sent)):
            gate.release()
        while len(sent) < n:
            await asyncio.sleep(0.01)
        await delivery.deliver_due(wait=False)
    # room for 3 (of 32): not taken for (a take read 32 rows to queue 3); for 8, a quarter
    # take: the 31 rows left taken, 8 of them read whole
    assert taken[1] == [] and len(taken[2]) == 31 and read[1:] == [taken[2][:8]]
    for _ in range(100):
        gate.release()
    while await delivery.deliver_due():
        pass
    assert len(sent) == 63 and len({n.key for n in sent}) == 63
    assert {e["kind"] for n in sent for e in n.body["events"]} == {"raised", "cleared"}  # type: ignore[union-attr,attr-defined]
    assert all(n.subject and "ch4-t1" in str(n.body["events"]) for n in sent)
