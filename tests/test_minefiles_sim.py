"""The simulated mine: its files are what the mine-files gateway takes; a cut-off upload is not."""

from __future__ import annotations

from gateway.minefiles import MineFilesGateway
from hazardhub.cli import main
from hazardhub.settings import load
from simulators.mt1201 import KINDS, MineSimulator, point_of_kind
from telemetry.mt1201 import Reading, parse, parse_name

from minefiles_rig import HUB_YAML, MINE, mines, now_s, taken, upload


async def test_the_simulated_mines_files_parse_and_are_taken(tmp_path) -> None:
    incoming = tmp_path / "ftp"
    t0 = now_s() * 1000 - 200_000
    sim = MineSimulator(
        upload(incoming),
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
    await gw.scan()
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
    names = sorted(p.name for p in upload(incoming).iterdir())  # the mine's own folder
    assert [parse_name(n).kind for n in names] == ["JC", "SS"]
    points = parse((upload(incoming) / names[0]).read_bytes(), "JC").records
    assert [p.point for p in points] == ["001A01", "001A04"]  # type: ignore[union-attr]
    assert main([*argv, "--mine", "000000000000"]) == 2


def test_simulate_then_draft_config_gives_back_every_kind_the_simulator_knows(
    tmp_path, capsys
) -> None:
    """A simulated point's type name is one draft-config reads back as its hub sensor's kind (an
    oxygen sensor was written as type "o2"'s fallback, "oxygen", and drafted as not known)."""
    codes = {kind: f"K{i:02d}" for i, kind in enumerate(KINDS)}
    profile = "\n".join(
        f'      - {{name: "{code}", address: {i}, unit: "{KINDS[kind][1]}"}}'
        for i, (kind, code) in enumerate(codes.items())
    )
    sensors = "\n".join(
        f'              - {{id: s-{code}, point: "{code}", kind: {kind}, location: "1301进风巷"}}'
        for kind, code in codes.items()
    )
    hub = tmp_path / "hub.yaml"
    hub.write_text(
        "version: 1\ndevice_profiles:\n  - name: all-kinds\n    points:\n" + profile + "\n"
        "tenants:\n  - id: north-coal\n    sites:\n      - id: face-1301\n        kind: mine\n"
        "        devices:\n          - id: kj\n            profile: all-kinds\n"
        "            gateway: kj-files\n            sensors:\n" + sensors + "\n",
        encoding="utf-8",
    )
    incoming = tmp_path / "ftp"
    points = ", ".join(f"{code}: s-{code}" for code in codes.values())
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301, "
        f"points: {{{points}}}}}\n",
        encoding="utf-8",
    )
    argv = ["mine-files", "-c", str(hub), "--mines", str(minesyaml)]
    assert main([*argv, "simulate", "--mine", MINE, "--duration-s", "0"]) == 0
    jc = next(upload(incoming).glob(f"{MINE}_JC_*.txt"))
    capsys.readouterr()
    drafted = [*argv, "--state-dir", str(tmp_path / "s"), "draft-config", "--mine", MINE]
    assert main([*drafted, "--jc", str(jc), "--device", "kj-draft"]) == 0
    printed = capsys.readouterr()
    assert " 0 of a type not known" in printed.err
    draft_yaml = tmp_path / "draft.yaml"
    draft_yaml.write_text(printed.out.split("\n---\n")[0], encoding="utf-8")
    registry = load(draft_yaml).registry()
    assert {s.key: s.kind for s in registry.sensors} == {c: k for k, c in codes.items()}
    assert {s.device for s in registry.sensors} == {"kj-draft"}
