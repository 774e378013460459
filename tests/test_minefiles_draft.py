"""draft-config: a mine's point definitions (JC) -> the hub's sensors and the point map, with
the kind from the type name and a proposed rule (to check) from the location's words."""

from __future__ import annotations

import re

import pytest

from gateway.minefiles.draft import draft, ident, upload_period
from gateway.minefiles.proposal import propose, sensor_kind
from hazardhub.cli import main
from hazardhub.settings import load
from telemetry.mt1201 import PointDef, file_name

from e2e_helpers import shipped_profiles
from minefiles_rig import HUB_YAML, MINE, SITE_ONLY_YAML, now_s, point_def, write_file

PACKS = {p.name: p for p in shipped_profiles()[1]}


@pytest.mark.parametrize(
    ("type_name", "kind", "known"),
    [
        ("甲烷", "methane", True),
        ("低浓甲烷", "methane", True),
        ("激光甲烷传感器", "methane", True),
        ("一氧化碳", "co", True),
        ("CO", "co", True),
        ("二氧化碳", "other", True),  # the CO2 rules take kind other
        ("co2", "other", True),
        ("氧气", "oxygen", True),
        ("硫化氢", "toxic_gas", True),
        ("风速", "wind_speed", True),
        ("环境温度", "temperature", True),
        ("负压", "pressure", True),
        ("馈电状态", "power_feed", True),
        ("设备开停", "other", True),
        ("局扇开停", "other", True),
        ("粉尘", "other", True),
        ("顶板离层", "other", False),  # not known: asked, kind other until someone says
    ],
)
def test_the_kind_comes_from_the_type_name(type_name: str, kind: str, known: bool) -> None:
    guess = sensor_kind(type_name)
    assert (guess.kind, guess.known) == (kind, known)


@pytest.mark.parametrize(
    ("location", "rule", "tag"),
    [
        ("1301上隅角", "coal-methane.upper-corner-t0", "T0"),
        ("1301综采工作面", "coal-methane.face-t1", "T1"),
        ("1301工作面回风巷", "coal-methane.return-t2", "T2"),
        ("1301回风顺槽", "coal-methane.return-t2", "T2"),
        ("1301进风巷", "coal-methane.intake-t3", "T3"),
        ("被串1302进风巷", "coal-methane.intake-series-t4", "T4"),
        ("1301回风巷中部", "coal-methane.return-middle", ""),
        ("2201掘进工作面", "coal-methane.heading-t1", "T1"),
        ("2201掘进工作面回风流", "coal-methane.heading-return-t2", "T2"),
        ("2201掘进机", "coal-methane.heading-machine", ""),
        ("采煤机机载", "coal-methane.shearer", ""),
        ("二采区回风巷", "coal-methane.district-return", ""),
        ("东翼回风巷", "coal-methane.main-return", ""),
        ("总回风巷", "coal-methane.main-return", ""),
        ("井下煤仓", "coal-methane.coal-bunker", ""),
        ("1301上隅角 T0", "coal-methane.upper-corner-t0", "T0"),  # the written tag agrees
        ("1301回风巷T1", None, "T1"),  # the written tag disagrees with the words: no rule
        ("地面抽采管道", None, ""),  # a pipeline: no airway row
        ("中央变电所", None, ""),  # no words of a row
        # a face's roadway not said intake or return: two rows could apply (0.5 % or 1.0 %)
        ("1301工作面运输顺槽", None, ""),
        ("1301工作面轨道巷", None, ""),
        ("1301进风巷乳化液泵站", "coal-methane.intake-t3", "T3"),  # a pump, in the intake
        ("1301工作面乳化液泵站", None, ""),
        ("井下临时瓦斯抽采泵站栅栏外", "coal-methane.drainage-station", ""),
        ("回风立井井口", "coal-methane.main-return", ""),  # the mine's return shaft: 0.75 %
        ("-500回风大巷", None, ""),  # a district's or the mine's main return
        ("1301工作面进风顺槽", "coal-methane.intake-t3", "T3"),
    ],
)
def test_a_methane_rule_is_proposed_from_the_location(
    location: str, rule: str | None, tag: str
) -> None:
    found = propose("methane", "甲烷", location, "%CH4", PACKS)
    assert (found.rule, found.tag) == (rule, tag), found.why
    assert found.why


@pytest.mark.parametrize(
    ("kind", "type_name", "location", "unit", "rule"),
    [
        ("co", "一氧化碳", "1301回风巷", "ppm", "coal-gas.co"),
        ("co", "一氧化碳", "1301回风巷", "%", None),  # not the rule's unit: no rule
        ("methane", "甲烷", "1301回风巷", "ppm", None),
        ("oxygen", "氧气", "1301进风巷", "%", "coal-gas.oxygen-intake"),
        ("oxygen", "氧气", "1301回风巷", "%", None),  # the O2 rule is the intake's
        ("toxic_gas", "硫化氢", "1301回风巷", "ppm", "coal-gas.h2s"),
        ("other", "二氧化碳", "1301进风巷", "%", "coal-gas.co2-intake"),
        ("other", "二氧化碳", "总回风巷", "%", "coal-gas.co2-main-return"),
        ("wind_speed", "风速", "1301回风巷", "m/s", None),  # no coal wind-speed rule
        ("power_feed", "馈电", "1301工作面", "", None),
    ],
)
def test_other_kinds_rules(kind: str, type_name: str, location: str, unit: str, rule: str) -> None:
    assert propose(kind, type_name, location, unit, PACKS).rule == rule  # type: ignore[arg-type]


def test_ids_are_hub_ids_and_unique() -> None:
    used: set[str] = set()
    assert ident("001A01", used) == "001A01"
    assert ident("0#01/x", used) == "0_01_x"
    assert ident("0?01/x", used) == "0_01_x-2"
    assert ident("_a", used) == "p_a"
    assert ident("甲", used) == "p_"
    assert len(ident("x" * 100, used)) == 64


def test_the_upload_period_is_read_from_the_real_time_files_names() -> None:
    t = 1_772_323_200_000
    names = [file_name(MINE, "SS", t + i * 30_000) for i in range(5)]
    names += [file_name(MINE, "JC", t + 1000), file_name("999999999999", "SS", t + 7000), "x.txt"]
    assert upload_period(names, MINE) == (30.0, 5)
    assert upload_period(names[:2], MINE) is None


def _points() -> list[PointDef]:
    return [
        point_def("001A01", 1.0, "1301回风巷"),
        point_def("001A02", 1.5, "1301工作面"),  # the mine alarms looser than the rule
        PointDef("001A03", "9", "顶板离层", "F01", "1301", "mm", 100.0, 0.0, None, None, "", None),
        PointDef("00/1", "3", "馈电", "F01", "1301工作面", "", 1.0, 0.0, None, None, "", None),
    ]


def test_every_proposed_rule_says_to_check_it_and_the_draft_loads(tmp_path) -> None:
    made = draft(
        MINE,
        _points(),
        PACKS,
        tenant="north-coal",
        site="face-1301",
        gateway="kj-files",
        source="x.txt",
        period=None,
    )
    assert (made.points, made.rules, made.unknown) == (4, 2, 1)
    lines = made.hub.splitlines()
    sensors = [i for i, line in enumerate(lines) if line.strip().startswith("- {id:")]
    assert len(sensors) == 4
    for i in sensors:
        comments = []
        j = i - 1
        while lines[j].strip().startswith("#"):
            comments.append(lines[j])
            j -= 1
        said = "\n".join(comments)
        if "rule:" in lines[i]:
            assert "PROPOSED rule" in said and "CHECK it against the mine's sensor layout" in said
        else:
            assert "no rule:" in said
    assert "ASK: type '顶板离层' is not known" in made.hub
    assert "the mine alarms at 1.5, this rule at 1" in made.hub
    assert "no_data_s 120: the mine's upload period is not known" in made.hub
    path = tmp_path / "hub.yaml"
    path.write_text(made.hub, encoding="utf-8")
    registry = load(path).registry()  # the hub's own loader
    by_id = {s.id: s for s in registry.sensors}
    assert by_id[f"{MINE}-001A01"].rule == "coal-methane.return-t2"
    assert by_id[f"{MINE}-001A02"].rule == "coal-methane.face-t1"
    assert by_id[f"{MINE}-001A03"].kind == "other" and by_id[f"{MINE}-001A03"].rule == ""
    assert by_id[f"{MINE}-00_1"].kind == "power_feed"
    assert {s.no_data_s for s in registry.sensors} == {120.0}
    assert re.search(r'"00/1": "140211000001-00_1"', made.mines)


def test_the_command_needs_definitions_and_a_site_and_keeps_edits(tmp_path, capsys) -> None:
    incoming, state, out = tmp_path / "ftp", tmp_path / "state", tmp_path / "out"
    hub = tmp_path / "hub.yaml"
    hub.write_text(SITE_ONLY_YAML, encoding="utf-8")
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301}}\n",
        encoding="utf-8",
    )
    argv = ["mine-files", "-c", str(hub), "--mines", str(minesyaml), "--state-dir", str(state)]
    assert main([*argv, "draft-config", "--mine", MINE]) == 2  # nothing kept yet
    assert "no point definitions" in capsys.readouterr().err
    assert main([*argv, "draft-config", "--mine", "000000000000"]) == 2
    assert "give --tenant and --site" in capsys.readouterr().err
    jc = write_file(tmp_path / "vendor", "JC", _points(), now_s() * 1000)
    command = [*argv, "draft-config", "--mine", MINE, "--jc", str(jc), "--period-s", "30"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "no_data_s: 90" in printed and "\n---\n" in printed
    assert main([*command, "--out", str(out)]) == 0
    assert (out / f"{MINE}.hub.yaml").read_text(encoding="utf-8") in printed
    assert main([*command, "--out", str(out)]) == 2  # never over an edited draft
    assert "exists" in capsys.readouterr().err


def test_the_device_is_named_with_device_and_one_the_site_has_is_refused(tmp_path, capsys) -> None:
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB_YAML, encoding="utf-8")  # site face-1301 has a device kj already
    incoming = tmp_path / "ftp"
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301}}\n",
        encoding="utf-8",
    )
    jc = write_file(tmp_path / "vendor", "JC", _points(), now_s() * 1000)
    argv = ["mine-files", "-c", str(hub), "--mines", str(minesyaml), "draft-config"]
    argv += ["--mine", MINE, "--jc", str(jc)]
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert "site face-1301 of north-coal" in said and "already has a device 'kj'" in said
    assert "--device" in said
    assert main([*argv, "--device", "kj/2"]) == 2
    assert "a device id is" in capsys.readouterr().err
    assert main([*argv, "--device", "kj-2"]) == 0
    assert '          - id: "kj-2"\n' in capsys.readouterr().out


def test_the_upload_period_is_read_from_the_day_folders_of_done(tmp_path, capsys) -> None:
    incoming, state = tmp_path / "ftp", tmp_path / "state"
    hub = tmp_path / "hub.yaml"
    hub.write_text(SITE_ONLY_YAML, encoding="utf-8")
    minesyaml = tmp_path / "mines.yaml"
    minesyaml.write_text(
        f"incoming: {incoming}\nmines:\n  '{MINE}': {{tenant: north-coal, site: face-1301}}\n",
        encoding="utf-8",
    )
    t = 1_772_380_740_000  # 2026-03-01 23:59:00 China time: the uploads go over midnight
    for i in range(6):
        name = file_name(MINE, "SS", t + i * 20_000)
        day = incoming / "done" / f"2026-03-0{1 + (i >= 3)}"
        day.mkdir(parents=True, exist_ok=True)
        (day / name).write_text("||", encoding="utf-8")
    jc = write_file(tmp_path / "vendor", "JC", _points(), now_s() * 1000)
    argv = ["mine-files", "-c", str(hub), "--mines", str(minesyaml), "--state-dir", str(state)]
    assert main([*argv, "draft-config", "--mine", MINE, "--jc", str(jc)]) == 0
    assert "3 x the upload period of 20 s seen in its latest 6 real-time files" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("location", "alarm", "cut"),
    [  # DOMAIN.md 1.1: the row's alarm and power-cut thresholds (None: alarm only)
        ("回风立井井口", 0.75, None),  # row 14: the mine's return
        ("1301进风巷乳化液泵站", 0.5, 0.5),  # row 5: a face's intake (T3)
        ("井下临时瓦斯抽采泵站栅栏外", 1.0, 1.0),  # row 18
        ("1301工作面回风巷", 1.0, 1.0),  # row 4 (T2)
        ("1301综采工作面", 1.0, 1.5),  # row 2 (T1)
        ("东翼回风巷", 0.75, None),  # row 14
    ],
)
def test_a_proposed_rule_has_the_rows_thresholds(
    location: str, alarm: float, cut: float | None
) -> None:
    found = propose("methane", "甲烷", location, "%CH4", PACKS)
    assert found.rule is not None, found.why
    pack, _, name = found.rule.partition(".")
    uppers = sorted(lv.above for lv in PACKS[pack].rules[name].levels if lv.above is not None)
    assert uppers[0] == alarm
    assert (uppers[1] if len(uppers) > 1 else None) == cut
