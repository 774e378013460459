"""Repeated points and status rules of a device profile (telemetry.pointrepeat): the 12-channel
gas panel of docs/configuration.md loads as the same profile its engineer wrote out point by
point (24 points, 24 status rules, by a script); the channels' names and addresses follow
count/step/first (hypothesis); overlapping channels, a name clash, a bad count and a repeated
status rule over points that are not repeated alike are refused, naming the channel."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hazardhub.cli import main
from telemetry.config import DeviceProfile, HubConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def doc_example() -> dict[str, Any]:
    """The gas-panel-12 profile printed in docs/configuration.md."""
    text = DOC.read_text(encoding="utf-8")
    marker = "<!-- example: gas-panel-12"
    block = re.search(r"```yaml\n(.*?)\n```", text[text.index(marker) :], re.S)
    assert block is not None
    data: dict[str, Any] = yaml.safe_load(block.group(1))
    return data


def written_out() -> dict[str, Any]:
    """The same panel as its engineer had to write it: every channel a point and two rules."""
    gas = [
        {
            "name": f"gas{n}",
            "table": "holding",
            "address": 2 * (n - 1),
            "dtype": "float32",
            "word_order": "CDAB",
            "unit": "%LEL" if n <= 8 else "ppm",
            "range": [0, 100],
            "valid": [-5, 120],
        }
        for n in range(1, 13)
    ]
    status = [
        {"name": f"st{n}", "table": "input", "address": 99 + n, "dtype": "uint16"}
        for n in range(1, 13)
    ]
    rules = [
        {"point": f"st{n}", "bit": bit, "quality": quality, "applies_to": [f"gas{n}"]}
        for bit, quality in ((0, "sensor_fault"), (1, "calibration"))
        for n in range(1, 13)
    ]
    return {
        "name": "acme-gas-panel-12",
        "description": "12-channel gas controller",
        "points": gas + status,
        "status": rules,
    }


def test_the_documented_panel_is_the_panel_written_out() -> None:
    repeated = DeviceProfile.model_validate(doc_example())
    plain = DeviceProfile.model_validate(written_out())
    assert repeated == plain
    assert [p.name for p in repeated.points][:3] == ["gas1", "gas2", "gas3"]
    assert (repeated.points[6].name, repeated.points[6].address) == ("gas7", 12)
    assert (repeated.points[18].name, repeated.points[18].address) == ("st7", 106)
    assert repeated.status[6].point == "st7" and repeated.status[6].applies_to == ("gas7",)
    # what the config API exports: plain points, the fields the file gave and no repeat
    dumped = repeated.model_dump(mode="json", exclude_unset=True)
    assert dumped == plain.model_dump(mode="json", exclude_unset=True)
    assert "repeat" not in str(dumped)
    # and that imports as it is
    assert DeviceProfile.model_validate(dumped) == repeated


@given(
    count=st.integers(1, 256),
    step=st.integers(2, 9),
    first=st.integers(0, 1000),
    address=st.integers(0, 30000),
)
def test_channels_are_numbered_from_first_and_step_apart(
    count: int, step: int, first: int, address: int
) -> None:
    profile = DeviceProfile.model_validate(
        {
            "name": "panel",
            "points": [
                {
                    "name": "ch_",
                    "dtype": "float32",
                    "address": address,
                    "repeat": {"count": count, "step": step, "first": first},
                }
            ],
        }
    )
    names = [p.name for p in profile.points]
    assert names == [f"ch_{first + k}" for k in range(count)]
    assert len(set(names)) == count
    assert [p.address for p in profile.points] == [address + k * step for k in range(count)]
    assert all(p.repeat is None and p.dtype == "float32" for p in profile.points)


def refused(mutate: Any) -> str:
    data = doc_example()
    mutate(data)
    with pytest.raises(ValidationError) as said:
        DeviceProfile.model_validate(data)
    return str(said.value)


def test_channels_that_share_a_register_are_refused_naming_both() -> None:
    # the second repeat started inside the first: gas9 over gas8's registers
    text = refused(lambda d: d["points"][1].update(address=14))
    assert "channel gas9 of points.1 (gas repeated, channels 9-12), holding 14-15" in text
    assert "overlaps channel gas8 of points.0 (gas repeated, channels 1-8)" in text
    # a step below a float32's two registers
    text = refused(lambda d: d["points"][0]["repeat"].update(step=1))
    assert "channel gas2 of points.0" in text and "overlaps channel gas1" in text


def test_a_channel_name_given_by_another_point_is_refused() -> None:
    text = refused(lambda d: d["points"].append({"name": "gas3", "address": 50}))
    assert "point name 'gas3' is given twice, by points.0 (gas repeated, channels 1-8)" in text
    assert "and by points.3" in text


@pytest.mark.parametrize("count", [0, 257, -1])
def test_a_count_out_of_bounds_is_refused(count: int) -> None:
    text = refused(lambda d: d["points"][2].update(repeat={"count": count}))
    assert "points.2.repeat.count" in text
    assert f"repeat count {count}: give the number of channels, 1 to 256" in text


def test_a_channel_past_the_last_register_is_refused() -> None:
    text = refused(lambda d: d["points"][2].update(address=65530))
    assert "repeat: channel st12 (uint16 at 65541) runs past register 65535" in text


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"repeat": 13},
            "status.0 (repeated, channels 1-13): the repeated point 'st' has no channel 13: it "
            "has channels 1-12",
        ),
        (
            {"applies_to": ["gas", "lel"]},
            "status.0 (repeated, channels 1-12): 'lel' is not a repeated point",
        ),
        (
            {"applies_to": []},
            "status.0 (repeated, channels 1-12): name the repeated points the rule applies to",
        ),
    ],
)
def test_a_repeated_rule_over_points_not_repeated_alike_is_refused(
    change: dict[str, Any], said: str
) -> None:
    text = refused(lambda d: d["status"][0].update(change))
    assert said in text


def test_a_rule_over_part_of_the_channels_names_what_is_missing() -> None:
    def eight(d: dict[str, Any]) -> None:
        d["points"][1]["repeat"]["first"] = 10  # gas 1-8 and 10-13: no gas9
        d["points"][2]["repeat"]["count"] = 13

    text = refused(lambda d: (eight(d), d["status"][0].update(repeat=13)))
    assert "the repeated point 'gas' has no channel 9: it has channels 1-8, 10-13" in text
    # a rule for channels 10-12 alone is taken
    data = copy.deepcopy(doc_example())
    eight(data)
    data["status"] = [
        {
            "point": "st",
            "bit": 0,
            "quality": "sensor_fault",
            "applies_to": ["gas"],
            "repeat": {"count": 3, "first": 10},
        }
    ]
    rules = DeviceProfile.model_validate(data).status
    assert [(r.point, r.applies_to) for r in rules] == [
        ("st10", ("gas10",)),
        ("st11", ("gas11",)),
        ("st12", ("gas12",)),
    ]


CONFIG = """
version: 1
device_profiles:
{profile}
tenants:
  - id: acme
    sites:
      - id: tank-farm
        devices:
          - id: gp-1
            profile: acme-gas-panel-12
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: gd-7, point: gas7, kind: flammable_gas, rule: chem-gas.flammable-lel}}
"""


def test_hazardhub_check_takes_a_repeated_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = yaml.safe_dump([doc_example()], sort_keys=False)
    path = tmp_path / "hub.yaml"
    path.write_text(CONFIG.format(profile=profile), encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err
    # a sensor on a channel the panel does not have is told as for any point
    path.write_text(CONFIG.format(profile=profile).replace("gas7", "gas13"), encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 2
    assert "profile 'acme-gas-panel-12' has no point 'gas13'" in capsys.readouterr().err


def panel(name: str, lines: int) -> dict[str, Any]:
    """A profile of `lines` repeated points of 256 channels each."""
    points = [
        {"name": f"c{i}_", "table": "input", "address": 256 * i, "repeat": 256}
        for i in range(lines)
    ]
    return {"name": name, "points": points}


def test_repeats_are_bounded_before_they_are_expanded() -> None:
    """1 MiB of one-line profiles of 256 channels would be millions of points: a profile's
    repeats make at most 4096 points, and a configuration's profiles' at most 16384."""
    assert len(DeviceProfile.model_validate(panel("p", 16)).points) == 4096
    with pytest.raises(ValidationError, match="the repeats make 4352 points, more than 4096"):
        DeviceProfile.model_validate(panel("p", 17))
    profiles = [panel(f"p{k}", 4) for k in range(17)]
    with pytest.raises(ValidationError) as said:
        HubConfig.model_validate({"device_profiles": profiles})
    assert said.value.errors()[0]["loc"] == ("device_profiles",)
    assert (
        "the device profiles repeat points 17408 times, more than 16384 in one configuration"
        in (str(said.value))
    )
    assert len(HubConfig.model_validate({"device_profiles": profiles[:16]}).device_profiles) == 16


def test_a_plain_rule_naming_a_repeated_point_is_told_of_the_repeat() -> None:
    """A status rule without `repeat:` naming the repeated `gas` got only "unknown point(s)
    ['gas']": it now says the channels `gas` became and the two ways to write the rule."""

    def plain(d: dict[str, Any]) -> None:
        d["status"][0].pop("repeat")

    text = refused(plain)
    assert "unknown point(s) ['st', 'gas'] ('st' is repeated: st1..st12; 'gas' is repeated:" in text
    assert "gas1..gas12; give the rule `repeat:`, one rule per channel, or name a channel)" in text
