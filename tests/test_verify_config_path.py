"""A sensor's `verify` errors, as `hazardhub check -c` prints them, name the path inside the file
(`tenants.N.sites.N.devices.N.sensors.N.verify...`) as every other configuration error does."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.cli import main

CONFIG = """
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: f2201-feed, point: feed, kind: power_feed}}
      - id: face-2201
        kind: mine
        devices:
          - id: kj-sub-2
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: 1503, unit: 1}}
            sensors:
              - {{id: f2201-co, point: co, kind: co}}
              - {{id: f2201-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1,
                 verify: {{{verify}, expect_below: 0.5, within_s: 2}}}}
"""
SENSOR = "tenants.0.sites.1.devices.0.sensors.1"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], verify: str) -> list[str]:
    """`hazardhub check -c site.yaml` with this `verify`: its error lines, without the file."""
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG.format(verify=verify), encoding="utf-8")
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    if code == 0:
        return []
    assert code == 2 and err.startswith("configuration error:\n"), (code, out, err)
    return [line.removeprefix(f"{path}: ") for line in err.splitlines()[1:]]


def test_verify_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path, capsys, "sensor: f2201-feed") == []
    which = "(sensor 'f2201-t1' of device 'kj-sub-2')"
    assert check(tmp_path, capsys, "sensor: f2201-fed") == [
        f"{SENSOR}.verify.sensor: no sensor 'f2201-fed' in its tenant {which}"
    ]
    assert check(tmp_path, capsys, "sensor: f2201-feed, also: [f2201-t1]") == [
        f"{SENSOR}.verify.also: not itself {which}"
    ]
    assert check(tmp_path, capsys, "sensor: f2201-feed, level: nope") == [
        f"{SENSOR}.verify.level: no level named 'nope' {which}"
    ]


def test_a_suppress_when_error_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    text = CONFIG.format(verify="sensor: f2201-feed").replace(
        "{id: f2201-co, point: co, kind: co}",
        "{id: f2201-co, point: co, kind: co, suppress_when: [{sensor: f2201-nope, alarm: true}]}",
    )
    path.write_text(text, encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()[1:]
    assert [line.removeprefix(f"{path}: ") for line in err] == [
        "tenants.0.sites.1.devices.0.sensors.0.suppress_when.0.sensor: sensor 'f2201-co': "
        "suppress_when names 'f2201-nope', which is not another sensor of the same tenant"
    ]
