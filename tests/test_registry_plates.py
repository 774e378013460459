"""A number plate names one vehicle of the whole hub (`telemetry.registrychecks.check_plates`):
two enterprises' vehicles of one plate showed the centre two tracks and two alarm lists under
one plate."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.settings import load_registry
from telemetry.errors import ConfigError
from telemetry.registrychecks import plate_key

ROOT = Path(__file__).resolve().parent.parent
DEMO = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
COACH = "      - {id: coach-07, plate: 苏B·K5678, class: coach}"


@pytest.mark.parametrize(
    ("plate", "said"),
    [
        ("苏A·D1234", "plate 苏A·D1234 is also acme-chem/tanker-01's"),
        ("苏a d1234", "is also acme-chem/tanker-01's"),  # as another writes it
        ("苏A-D1234", "is also acme-chem/tanker-01's"),
        ("· -", "is no plate"),
    ],
)
def test_a_plate_on_two_vehicles_is_refused(tmp_path: Path, plate: str, said: str) -> None:
    assert COACH in DEMO
    cfg = tmp_path / "hub.yaml"
    twin = f'      - {{id: coach-08, plate: "{plate}", class: coach}}'
    cfg.write_text(DEMO.replace(COACH, f"{COACH}\n{twin}"), encoding="utf-8")
    with pytest.raises(ConfigError, match=said):
        load_registry(cfg, [ROOT / "profiles"])


def test_plates_are_compared_as_read() -> None:
    assert plate_key("苏A·D1234") == plate_key("苏a d1234") == "苏AD1234"
    assert plate_key("苏A·D1234") != plate_key("苏A·D1235")
    assert plate_key("川A00001") != plate_key("川A00002")
