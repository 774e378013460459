"""The mine-files gateway over real parts: MT/T 1201 files written into a folder, a real
Mosquitto, the readings as the broker routes them; files to done/ only once acknowledged."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import pytest

from gateway.minefiles import MineFilesGateway
from gateway.minefiles.points import load_points
from hazardhub.cli import main
from telemetry.mt1201 import AlarmRecord
from telemetry.quality import Quality

from e2e_helpers import TelemetryWatch, eventually
from minefiles_rig import (
    HUB_YAML,
    MINE,
    day_folder,
    mines,
    now_s,
    point_def,
    reading,
    taken,
    upload,
    write_file,
)


def _gateway(incoming: Path, port: int, state: Path, **settings: object) -> MineFilesGateway:
    return MineFilesGateway(
        mines(incoming, **settings), broker_host="127.0.0.1", broker_port=port, state_dir=state
    )


async def _run_until(gw: MineFilesGateway, done: object, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        await eventually(done, 10, what)  # type: ignore[arg-type]
    finally:
        stop.set()
        await task


async def test_readings_of_a_real_time_file_reach_the_broker(mosquitto, tmp_path) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    path = write_file(
        upload(incoming),
        "SS",
        [
            reading("001A01", 0.42, "0", t),
            reading("001A02", None, "断线", t),  # -9999: no value, a line break
            reading("001A04", 0.80, "8", t),  # calibrating (the configured code 8)
            reading("001A03", 5.0, "正常", t - 1000),  # by the default sensor id {mine}-{point}
            reading("009Z99", 0.1, "0", t),  # no hub sensor: dropped, counted
        ],
        t,
    )
    # one broken record: the rest of the file is still taken
    text = path.read_text(encoding="utf-8").replace("||", "001A01;0001;甲烷;KJ;x;%;0;bad~\n||")
    path.write_text(text, encoding="utf-8")
    gw = _gateway(incoming, mosquitto.port, tmp_path / "state")
    async with TelemetryWatch(mosquitto.port) as watch:
        await _run_until(
            gw, lambda: _async(taken(incoming, path.name).exists()), "the file in done/"
        )
        await watch.quiet()
        assert watch.published["kj"] and sum(watch.published["kj"].values()) == 4
    assert not path.exists()
    assert gw.counters["records_bad"] == 1
    assert gw.counters["points_unmapped"] == 1
    assert gw.counters["readings"] == 4
    assert gw.counters["files_done"] == 1


async def _async(value: object) -> object:
    return value


async def test_values_qualities_and_times_on_the_wire(mosquitto, tmp_path) -> None:
    import aiomqtt

    from telemetry.codec import decode

    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    path = write_file(
        upload(incoming),
        "SS",
        [
            reading("001A01", 0.42, "0", t),
            reading("001A02", None, "断线", t),
            reading("001A04", 0.80, "8", t),
            reading("001A03", 5.0, "溢出", t - 1000),
        ],
        t,
    )
    gw = _gateway(incoming, mosquitto.port, tmp_path / "state")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="mf-watch") as client:
        await client.subscribe("hazardhub/v1/north-coal/face-1301/kj/telemetry", qos=1)
        await _run_until(
            gw, lambda: _async(taken(incoming, path.name).exists()), "the file in done/"
        )
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    batch = decode(message.payload)
    assert batch.gateway == "kj-files" and batch.device == "kj"
    rows = {
        batch.keys[k]: (int(ts), float(v), int(q))
        for k, ts, v, q in zip(batch.key, batch.ts, batch.value, batch.quality, strict=True)
    }
    assert rows["001A01"] == (t, 0.42, Quality.GOOD)
    ts, value, quality = rows["001A02"]
    assert (ts, quality) == (t, Quality.SENSOR_FAULT) and math.isnan(value)
    assert rows["001A04"] == (t, 0.80, Quality.CALIBRATION)  # a quality, never a value to judge
    assert rows["001A03"] == (t - 1000, 5.0, Quality.OUT_OF_RANGE)
    assert list(batch.ts) == sorted(batch.ts)


async def test_a_file_moves_to_done_only_after_the_broker_acknowledged(mosquitto, tmp_path) -> None:
    incoming, state = tmp_path / "ftp", tmp_path / "state"
    t = now_s() * 1000
    path = write_file(upload(incoming), "SS", [reading("001A01", 0.3, "0", t)], t)
    mosquitto.stop()
    gw = _gateway(incoming, mosquitto.port, state)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    await eventually(lambda: _async(gw.in_flight == 1), 5, "the file taken")
    await asyncio.sleep(0.5)
    assert path.exists() and not (incoming / "done").exists()  # not acknowledged: stays
    stop.set()
    await task
    assert path.exists()  # a restart takes it again
    mosquitto.start()
    again = _gateway(incoming, mosquitto.port, state)
    await _run_until(
        again, lambda: _async(taken(incoming, path.name).exists()), "the file in done/"
    )
    assert again.counters["files_done"] == 1


async def test_incomplete_misnamed_and_foreign_files_are_rejected_with_a_reason(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    gw = MineFilesGateway(
        mines(incoming, incomplete_after_s=60),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=tmp_path / "state",
    )
    growing = write_file(upload(incoming), "SS", [reading("001A01", 0.3, "0", t)], t)
    growing.write_bytes(growing.read_bytes().replace(b"||", b""))  # still being uploaded
    (upload(incoming) / "notes.txt").write_text("hello", encoding="utf-8")
    (upload(incoming) / "999999999999_SS_20260301080000.txt").write_text("x;y||", encoding="utf-8")
    (upload(incoming) / ".upload.txt").write_text("half", encoding="utf-8")  # FTP's: left
    at = t / 1000 + 10  # after the files were written
    gw._clock = lambda: at
    await gw.scan()
    assert growing.exists()  # waits for its end marker

    def rejected(name: str) -> Path:  # beside the file, in its day's folder
        assert taken(incoming, name, "rejected", at).exists()
        return taken(incoming, name, "rejected", at).with_name(f"{name}.reason")

    assert rejected("notes.txt").read_text(encoding="utf-8").startswith("file name")
    why = rejected("999999999999_SS_20260301080000.txt").read_text(encoding="utf-8")
    assert f"not mine {MINE}'s" in why
    gw._clock = lambda: growing.stat().st_mtime + 61  # a minute later
    await gw.scan()
    assert "incomplete" in rejected(growing.name).read_text(encoding="utf-8")
    assert (upload(incoming) / ".upload.txt").exists()
    assert gw.counters["files_rejected"] == 3


async def test_a_file_without_a_good_record_is_rejected(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    path = write_file(upload(incoming), "SS", [], t)
    path.write_text(
        path.read_text(encoding="utf-8").replace("||", "001A01;1;2~\n||"), encoding="utf-8"
    )
    gw = MineFilesGateway(
        mines(incoming), broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path / "s"
    )
    await gw.scan()
    why = (
        taken(incoming, path.name, "rejected")
        .with_name(f"{path.name}.reason")
        .read_text(encoding="utf-8")
    )
    assert "line 2, field record: has 3 fields, expected 8" in why


async def test_the_queue_says_when_it_is_full(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    first = write_file(upload(incoming), "SS", [reading("001A01", 0.3, "0", t)], t)
    second = write_file(upload(incoming), "SS", [reading("001A01", 0.3, "0", t + 1000)], t + 1000)
    gw = MineFilesGateway(
        mines(incoming, max_files_in_flight=1),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=tmp_path / "s",
    )
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
        await gw.scan()
    assert gw.in_flight == 1 and first.exists() and second.exists()
    assert gw.counters["queue_full"] == 1  # said once while it stays full
    assert sum("queue full" in r.message for r in caplog.records) == 1


async def test_point_definitions_looser_than_the_hub_are_found(tmp_path, caplog, capsys) -> None:
    incoming, state = tmp_path / "ftp", tmp_path / "state"
    t = now_s() * 1000
    # the return airway's T2 alarms at 1.5 % at the mine; the hub's rule at 1.0 %
    path = write_file(
        upload(incoming),
        "JC",
        [
            point_def("001A01", 1.5),
            point_def("001A02", 1.0, "1301工作面"),
            point_def("001A04", None, "上隅角"),
            point_def("009Z99", 1.0),
        ],
        t,
    )
    gw = MineFilesGateway(mines(incoming), broker_host="127.0.0.1", broker_port=1, state_dir=state)
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
    assert taken(incoming, path.name).exists()
    assert gw.counters["thresholds_looser"] == 1 and gw.counters["thresholds_no_alarm"] == 1
    said = "\n".join(r.message for r in caplog.records)
    assert "point 001A01" in said and "alarms at 1.5, looser than" in said
    assert "coal-methane.return-t2 at 1" in said
    assert list(load_points(state / "points")) == [MINE]

    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB_YAML, encoding="utf-8")
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301, "
        "points: {001A01: t2-return, 001A02: t1-face, 001A04: t0-corner}}\n",
        encoding="utf-8",
    )
    code = main(
        [
            *("mine-files", "-c", str(hub), "--mines", str(minesyaml)),
            *("--state-dir", str(state), "check-points"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "4 points, 2 looser than the hub, without an alarm threshold or a gas without a hub " in out
    )
    assert "001A01" in out and "001A04" in out and "001A02 (" not in out


async def test_the_mines_own_alarms_are_counted_and_logged(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    t = now_s() * 1000
    alarm = AlarmRecord(
        "001A01", "0001", "甲烷", "KJ-F01", "报警", t - 60_000, None, "1", None, None, t, 1.62, t
    )
    path = write_file(upload(incoming), "YC", [alarm], t)
    gw = MineFilesGateway(
        mines(incoming), broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path / "s"
    )
    with caplog.at_level(logging.WARNING, logger="gateway.minefiles"):
        await gw.scan()
    assert taken(incoming, path.name).exists()
    assert gw.counters["mine_alarms"] == 1
    assert any(
        "point 001A01 (甲烷) 报警" in r.message and "1.62" in r.message for r in caplog.records
    )


def test_a_point_map_to_another_sites_sensor_is_refused(tmp_path) -> None:
    from gateway.minefiles import MineFilesConfig, resolve
    from telemetry.errors import ConfigError

    from minefiles_rig import hub_registry

    config = MineFilesConfig.model_validate(
        {
            "incoming": str(tmp_path),
            "mines": {MINE: {"tenant": "north-coal", "site": "face-1301", "points": {"x": "nope"}}},
        }
    )
    with pytest.raises(ConfigError, match=r"mines\.140211000001\.points\.x: the hub has no sensor"):
        resolve(config, hub_registry(), "mines.yaml")


async def test_a_file_that_cannot_be_moved_is_said_once_and_tried_again(tmp_path, caplog) -> None:
    incoming = tmp_path / "ftp"
    blocked = tmp_path / "done-is-a-file"
    blocked.write_text("", encoding="utf-8")
    t = now_s() * 1000
    path = write_file(upload(incoming), "JC", [point_def("001A01", 1.0)], t)
    gw = MineFilesGateway(
        mines(incoming, done=str(blocked)),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=tmp_path / "s",
    )
    with caplog.at_level(logging.ERROR, logger="gateway.minefiles"):
        await gw.scan()
        await gw.scan()
        await gw.scan()
    assert path.exists()  # still there: moved once it can be
    assert gw.counters["file_errors"] == 3
    assert gw.counters["records_JC"] == 1  # taken once: only the move is tried again
    assert sum(str(path) in r.message for r in caplog.records) == 1
    blocked.unlink()
    await gw.scan()
    assert (blocked / day_folder(path.name) / path.name).exists()
    assert gw.counters["records_JC"] == 1 and gw.counters["files_done"] == 1


async def test_a_file_changed_while_it_cannot_be_moved_is_taken_again(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    blocked = tmp_path / "done-is-a-file"
    blocked.write_text("", encoding="utf-8")
    t = now_s() * 1000
    path = write_file(upload(incoming), "YC", [], t)
    gw = MineFilesGateway(
        mines(incoming, done=str(blocked)),
        broker_host="127.0.0.1",
        broker_port=1,
        state_dir=tmp_path / "s",
    )
    await gw.scan()
    await gw.scan()
    assert gw.counters["records_YC"] == 0 and gw.counters["file_errors"] == 2
    write_file(
        upload(incoming),
        "YC",
        [
            AlarmRecord(
                "001A01", "0001", "甲烷", "KJ", "报警", t, None, "1", None, None, None, None, t
            )
        ],
        t,
    )
    blocked.unlink()
    await gw.scan()
    assert gw.counters["records_YC"] == 1 and gw.counters["files_done"] == 1
    assert (blocked / day_folder(path.name) / path.name).exists()


async def test_the_command_takes_files_until_stopped(mosquitto, tmp_path) -> None:
    import signal
    import subprocess
    import sys

    import httpx

    from services import free_port

    metrics = free_port()
    incoming = tmp_path / "ftp"
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB_YAML, encoding="utf-8")
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nsettle_s: 0\nscan_s: 0.1\nmines:\n  '{MINE}': "
        "{tenant: north-coal, site: face-1301, points: {001A01: t2-return}}\n",
        encoding="utf-8",
    )
    t = now_s() * 1000
    path = write_file(upload(incoming), "SS", [reading("001A01", 0.4, "0", t)], t)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hazardhub",
            "mine-files",
            "-c",
            str(hub),
            "--mines",
            str(minesyaml),
            "--state-dir",
            str(tmp_path / "state"),
            "--broker",
            f"127.0.0.1:{mosquitto.port}",
            "--metrics",
            f"127.0.0.1:{metrics}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await eventually(
            lambda: _async(taken(incoming, path.name).exists()), 20, "the file in done/"
        )
        # its counters for Prometheus (--metrics): the file done, its reading
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"http://127.0.0.1:{metrics}/metrics")).text
        assert 'hazardhub_gateway_events_total{gateway="mine-files",counter="files_done"} 1' in text
        assert 'counter="readings"} 1' in text and 'what="mines"} 1' in text, text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped with 0 files not yet acknowledged" in err
