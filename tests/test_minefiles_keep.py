"""Housekeeping: files in done/ and rejected/ older than keep_days are removed, at most once an
hour, counted and logged; keep_days 0 keeps them for ever."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from gateway.minefiles import MineFilesGateway

from e2e_helpers import eventually
from minefiles_rig import mines

DAY = 86400.0


def _file(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x||", encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def _gateway(incoming: Path, state: Path, now: list[float], **settings: object) -> MineFilesGateway:
    return MineFilesGateway(
        mines(incoming, **settings),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=state,
        clock=lambda: now[0],
    )


def test_old_taken_and_rejected_files_are_removed_once_an_hour(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    incoming.mkdir()
    now = [1_800_000_000.0]
    old = [
        _file(incoming / "done" / "a_SS_1.txt", now[0] - 31 * DAY),
        _file(incoming / "rejected" / "b.txt", now[0] - 40 * DAY),
        _file(incoming / "rejected" / "b.txt.reason", now[0] - 40 * DAY),
    ]
    young = _file(incoming / "done" / "c_SS_2.txt", now[0] - 29.99 * DAY)
    waiting = _file(incoming / "old-upload.tmp", now[0] - 90 * DAY)  # not ours: left alone
    gw = _gateway(incoming, tmp_path / "s", now, keep_days=30)
    with caplog.at_level(logging.INFO, logger="gateway.minefiles"):
        gw.keeper.sweep()
    assert not any(p.exists() for p in old)
    assert young.exists() and waiting.exists()
    assert gw.counters["files_removed"] == 3
    said = [r.message for r in caplog.records if "removed" in r.message]
    assert any("removed 1 files older than 30 days from" in m and "done" in m for m in said)
    assert any("removed 2 files older than 30 days from" in m for m in said)

    now[0] += 59 * 60  # within the hour: not looked at again
    gw.keeper.sweep()
    assert young.exists() and gw.counters["files_removed"] == 3
    now[0] += 2 * 60
    gw.keeper.sweep()
    assert not young.exists() and gw.counters["files_removed"] == 4


def test_keep_days_0_keeps_them_for_ever(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    incoming.mkdir()
    now = [1_800_000_000.0]
    old = _file(incoming / "done" / "a_SS_1.txt", now[0] - 3650 * DAY)
    gw = _gateway(incoming, tmp_path / "s", now, keep_days=0)
    gw.keeper.sweep()
    assert old.exists() and gw.counters["files_removed"] == 0


def test_the_default_is_30_days(tmp_path) -> None:
    assert mines(tmp_path).config.keep_days == 30


async def test_the_running_process_looks_at_its_start(mosquitto, tmp_path) -> None:
    incoming = tmp_path / "ftp"
    incoming.mkdir()
    old = _file(incoming / "rejected" / "x.txt", 1_000_000_000.0)
    gw = MineFilesGateway(
        mines(incoming, keep_days=1),
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        state_dir=tmp_path / "s",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))

    async def gone() -> bool:
        return not old.exists()

    try:
        await eventually(gone, 5, "the old rejected file removed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert gw.counters["files_removed"] == 1
