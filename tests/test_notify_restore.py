"""A data folder restored from a backup must not send new notifications under keys the
receivers already had (helper-196: restored from `hazardhub backup`'s copy, the hub numbered its
events again from the backup's, and `acme-chem/*city-ews:e23@...` named the gas panel's comm
loss before and the tank2 RTU's after: a receiver dropping repeats by key, as docs/alarms.md
advises, drops the new alarm). A notification pending in the backup keeps its key."""

from __future__ import annotations

import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.notify.outboxdb import OutboxDB, mark_restored, outbox_path
from alerts.restoredcopy import GAP
from hazardhub.cli import main

from notify_rig import Rig
from receivers import WebhookReceiver

SECRET = "restore-secret"


def _rig(data: Path, now: int | None = None) -> Rig:
    rig = Rig(data)
    if now is not None:
        rig.now = now  # the restored hub starts later than the old one stopped
    return rig


def _subscribe(rig: Rig, url: str) -> None:
    hook = {"type": "webhook", "url": url, "secret": SECRET}
    rig.subscribe(id="hook", channel=hook)
    rig.subscribe(id="grouped", channel=hook, group_window_s=60)


async def _stop(rig: Rig) -> None:
    await rig.notifier._senders.aclose()
    rig.notifier.close()
    rig.db.close()


def _series(key: str | None) -> str:
    assert key is not None
    return key.rpartition("@")[2]


def _bodies(receiver: WebhookReceiver) -> dict[str, set[bytes]]:
    """Each key received, with the distinct bodies it came with (the key in the body left out:
    it is the header's)."""
    seen: dict[str, set[bytes]] = defaultdict(set)
    for req in receiver.requests:
        body: dict[str, Any] = req.json()
        assert body.pop("key") == req.key
        assert req.key is not None
        seen[req.key].add(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return seen


async def test_a_restored_backup_sends_no_key_again_for_another_notification(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, bk = tmp_path / "hazardhub", tmp_path / "backups" / "bk1"
    data.mkdir()
    with WebhookReceiver(secret=SECRET) as receiver:
        live = _rig(data)
        _subscribe(live, receiver.url)
        assert live.feed("ch4-t1", [0.3, 1.1])
        await live.pump()
        assert live.feed("co", [0.0, 30.0])
        live.notifier.route()  # routed, not sent yet: pending in the backup
        pending = {
            k
            for (k,) in live.notifier.outbox.query(
                "SELECT key FROM outbox WHERE status = 'pending'"
            )
        }
        assert pending == {"north-coal/hook:e2", "north-coal/grouped:g2"}
        assert main(["backup", "--data-dir", str(data), "--to", str(bk)]) == 0  # while it runs
        # after the backup: the pending ones delivered, and other alarms
        await live.pump(70)
        assert live.feed("ch4-t2", [0.3, 1.2])
        await live.pump()
        assert live.feed("ch4-t0", [0.3, 1.5])
        await live.pump(70)
        stopped_at = live.now
        await _stop(live)
        before = _bodies(receiver)
        old = {_series(k) for k in before}
        assert len(old) == 1
        assert {k.partition("@")[0] for k in before} >= {
            "north-coal/hook:e3",
            "north-coal/hook:e4",
            "north-coal/grouped:e3",
            "north-coal/hook:e2",
            "north-coal/grouped:g2",
        }
        receiver.clear()

        # restore as docs/operations.md says: the folder moved aside, the backup copied back
        os.rename(data, tmp_path / "hazardhub.old")
        shutil.copytree(bk, data, copy_function=shutil.copy2)
        caplog.set_level(logging.WARNING, logger="alerts.notify.outboxdb")
        restored = _rig(data, stopped_at + 600_000)
        await restored.pump()  # what was pending in the backup goes out again
        resent = _bodies(receiver)
        (was,) = old
        assert set(resent) == {f"{k}@{was}" for k in pending}
        for key, bodies in resent.items():
            assert bodies == before[key]  # the same notification: the receiver drops it
        # new alarms (the event ids after the backup's again)
        assert restored.feed("ch4-t2", [0.3, 1.3])
        await restored.pump()
        assert restored.feed("ch4-t0", [0.3, 1.8])
        await restored.pump(70)
        listed = {r[1] for r in restored.notifier.store.outbox(None)}  # keys as sent
        await _stop(restored)
    after = _bodies(receiver)
    # no key came with two bodies: before and after the restore, each key one notification
    both: dict[str, set[bytes]] = defaultdict(set)
    for seen in (before, after):
        for key, bodies in seen.items():
            both[key] |= bodies
    assert all(len(b) == 1 for b in both.values()), {k: len(b) for k, b in both.items()}
    new = {_series(k) for k in after} - {_series(k) for k in before}
    assert len(new) == 1 and len(after) == 6
    # the outbox list shows each key as sent: the rows of before the backup under the old series
    kept = {"north-coal/hook:e1", "north-coal/grouped:e1", *pending}
    assert listed == {f"{k}@{was}" for k in kept} | {k for k in after if _series(k) in new}
    said = [r.getMessage() for r in caplog.records if "new series" in r.getMessage()]
    assert len(said) == 1 and "started from a backup taken at" in said[0], said
    # the mark is gone: a plain restart keeps the new series
    again = OutboxDB(outbox_path(data / "state.db"))
    try:
        assert again.installation == new.pop()
    finally:
        again.close()


async def test_files_copied_otherwise_get_a_new_series_from_hazardhub_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of a stopped hub's folder carries no mark: `hazardhub restored` gives it one. The
    copy `hazardhub backup` made keeps its mark, the hub's own file never gets one."""
    data, copy = tmp_path / "hazardhub", tmp_path / "copy"
    data.mkdir()
    assert main(["restored", "--data-dir", str(data)]) == 2  # no outbox: nothing to mark
    assert "no notification outbox" in capsys.readouterr().err
    rig = _rig(data)
    rig.subscribe(id="all")
    rig.feed("ch4-t1", [0.3, 1.1])
    (first,) = await rig.pump()
    assert main(["backup", "--data-dir", str(data), "--to", str(tmp_path / "bk")]) == 0
    await _stop(rig)
    shutil.copytree(data, copy, copy_function=shutil.copy2)  # the hub stopped: a plain copy

    def series(folder: Path) -> str:
        outbox = OutboxDB(outbox_path(folder / "state.db"))
        try:
            return outbox.installation
        finally:
            outbox.close()

    assert series(data) == _series(first.key)  # the hub's own folder: no mark
    assert main(["restored", "--data-dir", str(copy)]) == 0
    assert "marked restored" in capsys.readouterr().out
    restored = _rig(copy, rig.now + 1000)
    restored.feed("ch4-t2", [0.3, 1.2])
    (later,) = await restored.pump()
    await _stop(restored)
    # the copy's journal numbers on from far above (alerts.restoredcopy): event 2 is e10000002
    assert later.key is not None and later.key.partition("@")[0] == f"north-coal/all:e{GAP + 2}"
    assert _series(later.key) not in (_series(first.key), "")
    # the backup's copy is marked at every restore from it: another series each time
    assert series(tmp_path / "bk") not in (_series(first.key), _series(later.key))


def test_a_restored_copys_open_group_is_closed_and_its_rows_keep_their_series(
    tmp_path: Path,
) -> None:
    """Its rows go out under the keys they were made with; a group still open takes no event
    of after the restore (under a key the old hub may have sent), whatever the clocks say."""
    path = tmp_path / "state-outbox.db"
    db = OutboxDB(path)
    was = db.installation
    with db.transaction() as con:
        con.execute(
            "INSERT INTO outbox (key, tenant, site, subscription, channel, subject, events, "
            "created_at, due_at, open_until) VALUES ('t/s:g5', 't', 'x', 't/s', '{}', 'x', "
            "'[]', 1, 4000000000000, 4000000000000)"
        )
    db.close()
    assert mark_restored(path, 1_796_000_000_000)
    assert not mark_restored(tmp_path / "none.db", None) and not (tmp_path / "none.db").exists()
    series = set()
    for _ in range(2):  # the second: a plain restart, the same series
        db = OutboxDB(path)
        try:
            series.add(db.installation)
            assert db.query("SELECT open_until, series FROM outbox") == [(None, was)]
            assert db.query("SELECT COUNT(*) FROM restored_copy") == [(0,)]
        finally:
            db.close()
    assert len(series) == 1 and was not in series
