"""A scenario's numbers are finite: a NaN (`to: .nan`, `constant: .nan`) was accepted silently
and showed later as a Modbus exception 4 at the gateway (the register it could not be written
to). It is refused when the scenario is read, with its place in the file, as a NaN speed limit
is. (A device failure on purpose is the mode `line_break` on a point that is not 4-20 mA.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.simulate import load_scenario
from telemetry.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("events:\n  - {at_s: 5, device: tank1-rtu, point: level, to: .nan}", "events.0.to"),
        ("events:\n  - {at_s: 5, vehicle: tanker-01, to: .inf, over_s: 5}", "events.0.to"),
        ("events:\n  - {at_s: 5, device: gt-1, point: gas, to: 3, rate_per_s: .inf}", "rate_per_s"),
        ("baseline:\n  tank1-rtu: {level: {constant: .nan}}", "baseline.tank1-rtu.level.constant"),
        ("baseline:\n  gas-panel: {lel1: {constant: 2, noise: .nan}}", "lel1.noise"),
        ("routes:\n  tanker-01: [[31.0, .nan], [31.1, 120.1]]", "routes.tanker-01.0.1"),
        ("clock_skew_s: {coach-07: .nan}", "clock_skew_s.coach-07"),
    ],
)
def test_a_non_finite_number_is_refused_at_load_with_its_place(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text(f"name: nan\nduration_s: 60\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_scenario(path, None)
    said = str(caught.value)
    assert str(path) in said and where in said and "finite number" in said, said


def test_finite_numbers_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\nduration_s: 60\nbaseline:\n  tank1-rtu: {level: {constant: 7, noise: 0.1}}\n"
        "events:\n  - {at_s: 5, device: tank1-rtu, point: level, to: 9.5, over_s: 30}\n",
        encoding="utf-8",
    )
    assert load_scenario(path, None).events[0].to == 9.5
