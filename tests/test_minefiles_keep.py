"""Housekeeping: the day folders of done/ and rejected/ older than keep_days are removed whole
(and files an older version left flat there, by their mtime), at most once an hour, counted and
logged; keep_days 0 keeps them for ever."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from gateway.minefiles import MineFilesGateway

from e2e_helpers import eventually
from minefiles_rig import MINE, day_folder, mines, point_def, upload, write_file

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


def test_old_day_folders_and_flat_files_are_removed_once_an_hour(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    incoming.mkdir()
    # 2027-01-15 08:00 China time; keep_days 30: the days up to 2026-12-15 are all older
    now = [1_800_000_000.0]
    assert day_folder("x", now[0]) == "2027-01-15"
    done, rejected = incoming / "done", incoming / "rejected"
    old = [
        _file(done / "2026-12-15" / f"{MINE}_SS_20261215235950.txt", now[0]),  # by the day
        _file(done / "2026-12-15" / f"{MINE}_SS_20261215000000.txt", now[0]),
        _file(done / "2026-11-02" / f"{MINE}_JC_20261102080000.txt", now[0]),
        _file(rejected / "2026-12-01" / "notes.txt", now[0]),
        _file(rejected / "2026-12-01" / "notes.txt.reason", now[0]),
        _file(done / "a_SS_1.txt", now[0] - 31 * DAY),  # flat, as an older version left it
        _file(rejected / "b.txt.reason", now[0] - 40 * DAY),
    ]
    young = _file(done / "2026-12-16" / f"{MINE}_SS_20261216000000.txt", now[0] - 90 * DAY)
    flat_young = _file(done / "c_SS_2.txt", now[0] - 29.99 * DAY)
    waiting = _file(incoming / "old-upload.tmp", now[0] - 90 * DAY)  # not ours: left alone
    mine = _file(done / "keep-me" / "x.txt", now[0] - 90 * DAY)  # not a day: left alone
    gw = _gateway(incoming, tmp_path / "s", now, keep_days=30)
    with caplog.at_level(logging.INFO, logger="gateway.minefiles"):
        gw.keeper.sweep()
    assert not any(p.exists() for p in old)
    assert sorted(p.name for p in done.iterdir()) == ["2026-12-16", "c_SS_2.txt", "keep-me"]
    assert [p.name for p in rejected.iterdir()] == []
    assert young.exists() and flat_young.exists() and waiting.exists() and mine.exists()
    assert gw.counters["files_removed"] == 7
    said = [r.message for r in caplog.records if "removed" in r.message]
    assert any("removed 4 files older than 30 days from" in m and "done" in m for m in said)
    assert any("removed 3 files older than 30 days from" in m for m in said)

    now[0] += 59 * 60  # within the hour: not looked at again
    gw.keeper.sweep()
    assert flat_young.exists() and gw.counters["files_removed"] == 7
    now[0] += 2 * 60
    gw.keeper.sweep()
    assert not flat_young.exists() and gw.counters["files_removed"] == 8
    now[0] = 1_800_000_000.0 + DAY + 16 * 3600  # 2027-01-17 00:00 China time: 2026-12-16 is due
    gw.keeper.sweep()
    assert not young.exists() and not young.parent.exists() and mine.exists()


async def test_taken_and_refused_files_go_to_their_days_folder(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    # a file named 00:30 China time on 1 March is of 1 March (28 February 16:30 UTC)
    at = 1_772_323_200  # 2026-03-01 08:00 China time
    jc = write_file(upload(incoming), "JC", [point_def("001A01", 1.0)], (at - 27_000) * 1000)
    assert jc.name == f"{MINE}_JC_20260301003000.txt"
    _file(upload(incoming) / "notes.txt", at)
    os.utime(jc, (at, at))
    now = [at + 10 * DAY + 0.0]  # taken ten days later
    gw = _gateway(incoming, tmp_path / "s", now)
    await gw.scan()
    assert (incoming / "done" / "2026-03-01" / jc.name).exists()
    rejected = incoming / "rejected" / "2026-03-11"  # no time in the name: the day taken
    assert (rejected / "notes.txt").exists() and (rejected / "notes.txt.reason").exists()


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
    old = _file(incoming / "rejected" / "2001-09-09" / "x.txt", 1_800_000_000.0)
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
