"""The simulated mine: its files are what the mine-files gateway takes; a cut-off upload is not."""

from __future__ import annotations

from gateway.minefiles import MineFilesGateway
from hazardhub.cli import main
from simulators.mt1201 import MineSimulator, point_of_kind
from telemetry.mt1201 import Reading, parse, parse_name

from minefiles_rig import HUB_YAML, MINE, mines, now_s, taken


def test_the_simulated_mines_files_parse_and_are_taken(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    t0 = now_s() * 1000 - 200_000
    sim = MineSimulator(
        incoming,
        MINE,
        (
            point_of_kind("001A01", "methane", "回风巷", alarm_high=1.0, rise_at_s=30.0),
            point_of_kind("001A03", "co", "回风巷", alarm_high=24.0, rise_at_s=None),
        ),
        start_ms=t0,
    )
    jc = sim.definitions(0.0)
    quiet = sim.real_time(10.0)
    peak = sim.real_time(70.0)
    cut = sim.write_partial(80.0)
    assert parse_name(peak.name).stamp_ms == t0 + 70_000
    records = parse(peak.read_bytes(), "SS").records
    assert isinstance(records[0], Reading) and records[0].value == 1.6
    assert isinstance(records[0], Reading) and records[0].data_ms == t0 + 70_000
    low = parse(quiet.read_bytes(), "SS").records[0]
    assert isinstance(low, Reading) and low.value is not None and low.value < 0.5
    gw = MineFilesGateway(
        mines(incoming), broker_host="127.0.0.1", broker_port=1, state_dir=tmp_path / "s"
    )
    gw.scan()
    assert taken(incoming, jc.name).exists()
    assert gw.in_flight == 2 and gw.counters["records_bad"] == 0  # waiting for the broker
    assert cut.exists() and not (incoming / "rejected").exists()  # waits for its end marker


def test_the_command_writes_a_mines_files(tmp_path, capsys) -> None:
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB_YAML, encoding="utf-8")
    incoming = tmp_path / "ftp"
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301, "
        "points: {001A01: t2-return, 001A04: t0-corner}}\n",
        encoding="utf-8",
    )
    argv = ["mine-files", "-c", str(hub), "--mines", str(minesyaml), "simulate"]
    assert main([*argv, "--mine", MINE, "--duration-s", "0"]) == 0
    names = sorted(p.name for p in incoming.iterdir())
    assert [parse_name(n).kind for n in names] == ["JC", "SS"]
    points = parse((incoming / names[0]).read_bytes(), "JC").records
    assert [p.point for p in points] == ["001A01", "001A04"]  # type: ignore[union-attr]
    assert main([*argv, "--mine", "000000000000"]) == 2
