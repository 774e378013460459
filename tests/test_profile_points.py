"""A device profile's points as `hazardhub check -c` judges them: `scale: 0` (every reading the
offset, a methane channel that never alarms) is refused, and a bad point's error comes alone
(not followed by "points: Tuple should have at least 1 item after validation, not 0")."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.cli import main

CONFIG = """
version: 1
device_profiles:
  - name: methane-pair
    points:
{points}
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: methane-pair
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: ch4-t1, point: ch4_t1, kind: methane, tag: T1, rule: coal-methane.face-t1}}
"""
T1 = "      - {name: ch4_t1, table: input, address: 1, scale: 0.01, unit: '%CH4'}"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], *points: str) -> list[str]:
    """`hazardhub check -c` on the configuration with these points: its error lines."""
    path = tmp_path / "hub.yaml"
    path.write_text(CONFIG.format(points="\n".join(points)), encoding="utf-8")
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    if code == 0:
        assert "ok:" in out
        return []
    assert code == 2 and err.startswith("configuration error:\n"), (code, err)
    return err.splitlines()[1:]


def test_the_good_profile_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path, capsys, T1) == []


def test_scale_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zero = T1.replace("scale: 0.01", "scale: 0, offset: 0.5")
    assert check(tmp_path, capsys, zero) == [
        f"{tmp_path / 'hub.yaml'}: device_profiles.0.points.0.scale: Value error, scale 0 would "
        "make every reading the offset, whatever the device sends: give the register's "
        "resolution (e.g. 0.01), or leave scale out (1)"
    ]
    # inverted (a uint16 counting down from 655.35 %); without the offset it reads
    # [-655.35, 0] and the methane levels above 0 are refused as never reached
    inverted = T1.replace("scale: 0.01", "scale: -0.01, offset: 655.35")
    assert check(tmp_path, capsys, inverted) == []
    (line,) = check(tmp_path, capsys, T1.replace("scale: 0.01", "scale: -0.01"))
    assert "[-655.35, 0]: a uint16 register times scale -0.01" in line


def test_a_point_error_comes_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = f"{tmp_path / 'hub.yaml'}: device_profiles.0"
    bit = "      - {name: ch4_t2, address: 2, dtype: bit}"
    assert check(tmp_path, capsys, T1, bit) == [
        f"{where}.points.1: Value error, dtype 'bit' needs 'bit' (0-15), and only it does"
    ]
    # two bad points: two errors, nothing more
    assert check(tmp_path, capsys, bit, bit.replace("ch4_t2", "ch4_t3")) == [
        f"{where}.points.0: Value error, dtype 'bit' needs 'bit' (0-15), and only it does",
        f"{where}.points.1: Value error, dtype 'bit' needs 'bit' (0-15), and only it does",
    ]
    # no point at all is still refused, once
    assert check(tmp_path, capsys, "      []") == [
        f"{where}.points: Value error, at least 1 item is needed: a profile without points reads "
        "nothing"
    ]
