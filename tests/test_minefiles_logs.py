"""A mine's text cannot forge a log line (a field or a file name holding a line break is
escaped) nor flood the log (a YC file's records are logged up to `ALARMS_SAID`, then counted)."""

from __future__ import annotations

import logging

from gateway.minefiles import MineFilesGateway
from gateway.minefiles.said import ALARMS_SAID
from telemetry.mt1201 import AlarmRecord

from minefiles_rig import MINE, mines, now_s, upload, write_file

FORGED = "\n2026-12-02 09:00:00,000 INFO gateway.minefiles.service all clear"


def _alarm(point: str, t: int) -> AlarmRecord:
    return AlarmRecord(point, "0001", "甲烷", "KJ", "报警", t, None, "1", None, None, t, 1.6, t)


async def test_a_mines_alarm_record_cannot_forge_a_log_line(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    path = write_file(upload(incoming), "YC", [_alarm("POINTX", t)], t)
    path.write_bytes(path.read_bytes().replace(b"POINTX", f"001A01{FORGED}".encode()))
    (upload(incoming) / f"notes{FORGED}.txt").write_text("x", encoding="utf-8")  # its name too
    gw = MineFilesGateway(mines(incoming), broker_host="h", broker_port=1, state_dir=tmp_path / "s")
    with caplog.at_level(logging.INFO, logger="gateway.minefiles"):
        await gw.scan()
    assert gw.counters["mine_alarms"] == 1
    said = [r.getMessage() for r in caplog.records if "reports point" in r.getMessage()]
    assert len(said) == 1
    assert "\n" not in said[0] and "001A01\\n2026-12-02 09:00:00,000 INFO" in said[0]
    assert gw.counters["files_rejected"] == 1  # the file named with a line break
    assert all("\n" not in r.getMessage() for r in caplog.records)


async def test_a_file_of_many_alarm_records_is_said_in_a_few_lines(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    write_file(upload(incoming), "YC", [_alarm(f"P{i:05d}", t) for i in range(10_000)], t)
    gw = MineFilesGateway(mines(incoming), broker_host="h", broker_port=1, state_dir=tmp_path / "s")
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
    assert gw.counters["mine_alarms"] == 10_000 and gw.counters["files_done"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == ALARMS_SAID + 1
    assert f"{10_000 - ALARMS_SAID} more alarm records of mine {MINE}" in warnings[-1]


def test_a_point_definitions_text_is_escaped_where_it_is_said() -> None:
    from gateway.minefiles.points import Finding

    found = Finding(MINE, "001A01", "甲烷", f"1301回风巷{FORGED}", "", "", 1.5, None, "unmapped")
    assert "\n" not in found.describe() and "1301回风巷\\n2026-12-02" in found.describe()
