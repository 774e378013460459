"""Mines whose KJ systems write GBK (GB18030): a mine set to ``encoding: gb18030`` has its files
taken as a UTF-8 mine's, through a real hub; the same file from a mine left at utf-8 is refused
saying what to set; check-points, draft-config and simulate read and write GBK."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.minefiles import MineFilesGateway, Mines
from hazardhub.cli import main
from telemetry.mt1201 import PointDef, Reading, parse, parse_name

from e2e_helpers import HubAccess, eventually, get_json, hub_ready
from minefiles_rig import (
    HUB_YAML,
    MINE,
    hub_registry,
    mines,
    now_s,
    point_def,
    taken,
    upload,
    write_file,
)

POINTS = {"001A01": "t2-return", "001A02": "t1-face", "001A04": "t0-corner"}


def _mines(incoming: Path, encoding: str, **kw: object) -> Mines:
    entry = {"tenant": "north-coal", "site": "face-1301", "points": POINTS, "encoding": encoding}
    return mines(incoming, mines={MINE: entry}, **kw)  # type: ignore[arg-type]


def _ss(incoming: Path, t: int) -> Path:
    """A GBK real-time file: Chinese substation names, type names and status words."""
    return write_file(
        upload(incoming),
        "SS",
        [
            Reading("001A01", "0001", "甲烷", "1301回风巷分站", 0.62, "%CH4", "正常", t - 2000),
            Reading("001A01", "0001", "甲烷", "1301回风巷分站", 1.60, "%CH4", "正常", t),
            Reading("001A02", "0001", "甲烷", "1301综采工作面", 0.30, "%CH4", "正常", t),
        ],
        t,
        "gb18030",
    )


@pytest.mark.slow
async def test_a_gbk_file_of_a_gb18030_mine_raises_the_return_air_methane_alarm(
    mosquitto, tmp_path
) -> None:
    registry = hub_registry()
    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    incoming = tmp_path / "ftp"
    t = now_s() * 1000 - 10_000
    path = _ss(incoming, t)
    assert not _utf8(path.read_bytes())
    gw = MineFilesGateway(
        _mines(incoming, "gb18030", registry=registry),
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        state_dir=tmp_path / "state",
    )
    hub_stop, stop = asyncio.Event(), asyncio.Event()
    hub_task = asyncio.create_task(hub.run(hub_stop))
    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        task = asyncio.create_task(gw.run(stop))

        async def done() -> bool:
            return taken(incoming, path.name).exists()

        try:
            await eventually(done, 10, "the file acknowledged")
        finally:
            stop.set()
            await task
        async with access.client() as client:

            async def alarms() -> list[dict[str, object]]:
                return await get_json(client, "/api/v1/alarms", sensor="t2-return")  # type: ignore[no-any-return]

            found = await eventually(alarms, 10, "the return-air methane alarm")
            latest = await get_json(client, "/api/v1/sensors/t2-return/latest")
    finally:
        hub_stop.set()
        await hub_task
    assert len(found) == 1 and found[0]["rule"] == "coal-methane.return-t2"
    assert found[0]["started_ts"] == t
    assert (latest["ts"], latest["value"]) == (t, 1.6)
    assert gw.counters["readings"] == 3 and gw.counters["files_rejected"] == 0
    assert gw.counters["status_unknown"] == 0  # 正常 read as 正常, not as other characters


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def test_the_same_file_at_a_utf8_mine_is_refused_saying_what_to_set(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    path = _ss(incoming, now_s() * 1000)
    gw = MineFilesGateway(
        _mines(incoming, "utf-8"), broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path / "s"
    )
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
    refused = taken(incoming, path.name, "rejected")
    assert refused.exists() and gw.in_flight == 0 and gw.counters["files_rejected"] == 1
    why = Path(f"{refused}.reason").read_text(encoding="utf-8")
    # 北 of 北方一矿, after "140211000001;"
    assert why.startswith("not UTF-8 (line 1, byte offset 13)"), why
    assert "set the mine's encoding: gb18030" in why
    said = [r.message for r in caplog.records if "rejected" in r.message]
    assert len(said) == 1 and "line 1, byte offset 13" in said[0]
    assert "encoding: gb18030" in said[0]


def _yamls(tmp_path: Path, incoming: Path, encoding: str) -> list[str]:
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB_YAML, encoding="utf-8")
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301, "
        f"encoding: {encoding}, points: {{001A01: t2-return, 001A02: t1-face, "
        "001A04: t0-corner}}\n",
        encoding="utf-8",
    )
    return ["mine-files", "-c", str(hub), "--mines", str(minesyaml)]


async def test_check_points_reads_a_gbk_point_definition_file(tmp_path, capsys) -> None:
    incoming, state = tmp_path / "ftp", tmp_path / "state"
    # the return airway's T2 alarms at 1.5 % at the mine; the hub's rule at 1.0 %
    path = write_file(
        upload(incoming),
        "JC",
        [point_def("001A01", 1.5, "1301回风巷"), point_def("001A02", 1.0, "1301综采工作面")],
        now_s() * 1000,
        "gb18030",
    )
    gw = MineFilesGateway(
        _mines(incoming, "gb18030"), broker_host="127.0.0.1", broker_port=1, state_dir=state
    )
    await gw.scan()
    assert taken(incoming, path.name).exists() and gw.counters["thresholds_looser"] == 1
    argv = _yamls(tmp_path, incoming, "gb18030")
    assert main([*argv, "--state-dir", str(state), "check-points"]) == 1
    out = capsys.readouterr().out
    assert "mine 140211000001 point 001A01 (甲烷 1301回风巷): the mine alarms at 1.5" in out


def test_draft_config_reads_a_gbk_jc_file(tmp_path, capsys) -> None:
    incoming = tmp_path / "ftp"
    upload(incoming).mkdir(parents=True)
    jc = write_file(
        tmp_path / "vendor",
        "JC",
        [point_def("001A01", 1.0, "1301回风巷"), point_def("001A02", 1.0, "1301综采工作面")],
        now_s() * 1000,
        "gb18030",
    )
    drafted = ["--state-dir", str(tmp_path / "s"), "draft-config", "--mine", MINE, "--jc", str(jc)]
    drafted += ["--period-s", "30", "--device", "kj-2"]
    # the mine's entry says gb18030
    assert main([*_yamls(tmp_path, incoming, "gb18030"), *drafted]) == 0
    printed = capsys.readouterr().out
    assert "1301回风巷" in printed and "coal-methane.return-t2" in printed
    assert "coal-methane.face-t1" in printed
    # a mine left at utf-8: refused, saying where and what to give
    utf8 = _yamls(tmp_path, incoming, "utf-8")
    assert main([*utf8, *drafted]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 (line 1, byte offset 13)" in err and "--encoding gb18030" in err
    # ... or the option says it
    assert main([*utf8, *drafted, "--encoding", "gb18030"]) == 0
    assert capsys.readouterr().out == printed
    assert main([*utf8, *drafted, "--encoding", "auto"]) == 0
    assert capsys.readouterr().out == printed


def test_simulate_writes_gbk_files_for_a_test_centre(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    argv = _yamls(tmp_path, incoming, "utf-8")
    assert (
        main([*argv, "simulate", "--mine", MINE, "--duration-s", "0", "--encoding", "gb18030"]) == 0
    )
    files = sorted(upload(incoming).iterdir())
    assert [parse_name(p.name).kind for p in files] == ["JC", "SS"]
    data = files[0].read_bytes()
    assert not _utf8(data)  # 模拟煤矿, 安全监控系统 in GBK
    points = parse(data, "JC", "gb18030").records
    assert [p.point for p in points if isinstance(p, PointDef)] == ["001A01", "001A02", "001A04"]
    assert parse(files[1].read_bytes(), "SS", "gb18030").header.mine_name == "模拟煤矿"
    # a mine set to gb18030 is simulated in GBK without the option
    again = tmp_path / "again"
    assert (
        main([*_yamls(tmp_path, again, "gb18030"), "simulate", "--mine", MINE, "--duration-s", "0"])
        == 0
    )
    assert not any(_utf8(p.read_bytes()) for p in upload(again).iterdir())
