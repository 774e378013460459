"""A number plate names one vehicle of the whole hub (`telemetry.registrychecks.check_plates`):
two enterprises' vehicles of one plate showed the centre two tracks and two alarm lists under
one plate. `hazardhub check` and a change through the API refuse a plate twice; a hub runs a
configuration of before the check (a stored revision) and warns (helper-147: refused at the
start, the API's revisions gave way to the file)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from telemetry.errors import ConfigError
from telemetry.registrychecks import check_plates, duplicate_plates, plate_key

ROOT = Path(__file__).resolve().parent.parent
DEMO = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
COACH = "      - {id: coach-07, plate: 苏B·K5678, class: coach}"


def _twin(tmp_path: Path, plate: str) -> Path:
    assert COACH in DEMO
    cfg = tmp_path / "hub.yaml"
    twin = f'      - {{id: coach-08, plate: "{plate}", class: coach}}'
    cfg.write_text(DEMO.replace(COACH, f"{COACH}\n{twin}"), encoding="utf-8")
    (tmp_path / "profiles").mkdir(exist_ok=True)
    return cfg


@pytest.mark.parametrize(
    ("plate", "said"),
    [
        ("苏A·D1234", "plate 苏A·D1234 is also acme-chem/tanker-01's (tenants.0.vehicles.0.plate)"),
        ("苏a d1234", "is also acme-chem/tanker-01's"),  # as another writes it
        ("苏A-D1234", "is also acme-chem/tanker-01's"),
        ("· -", "is no plate"),
    ],
)
def test_check_refuses_a_plate_on_two_vehicles(
    tmp_path: Path, plate: str, said: str, capsys
) -> None:
    from hazardhub.cli import main

    assert main(["check", "-c", str(_twin(tmp_path, plate))]) == 2
    assert said in capsys.readouterr().err


def test_a_hub_runs_a_configuration_of_before_the_check_and_warns(tmp_path: Path, caplog) -> None:
    """A stored revision with a plate twice (valid when it was made) still runs at a hub's
    start; the API refuses a new plate twice, but lets a change beside the old pair through."""
    from api.configadmin import ConfigAdmin, ConfigRefusedError, document
    from api.registrydb import RegistryDB
    from hazardhub.settings import load

    cfg = _twin(tmp_path, "苏a d1234")
    loaded = load(cfg)
    db = RegistryDB(tmp_path / "registry.db")

    async def switch(registry, rev):  # type: ignore[no-untyped-def]
        return None

    caplog.set_level(logging.WARNING, logger="api.configadmin")
    admin = ConfigAdmin(db, loaded.registry, switch)
    registry = admin.startup(loaded.registry(), str(cfg))
    assert duplicate_plates(registry.config) == {
        "苏AD1234": ["acme-chem/tanker-01", "swift-coach/coach-08"]
    }
    assert any("plate 苏AD1234 is of 2 vehicles" in r.getMessage() for r in caplog.records)
    doc = document(registry.config)
    doc["tenants"][0]["name"] = "renamed beside the old pair"
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="x", source="api"))
    doc["tenants"][0]["vehicles"].append(
        {"id": "tanker-09", "plate": "苏B K5678", "class": "hazmat"}
    )
    with pytest.raises(ConfigRefusedError) as refused:
        asyncio.run(admin.change(lambda _d: doc, actor="root", comment="x", source="api"))
    (error,) = refused.value.errors
    # at the vehicle added, naming the one that had the plate
    assert error["loc"] == ["body", "tenants", 0, "vehicles", 1, "plate"], error
    assert "is also swift-coach/coach-07's" in error["msg"]
    db.close()


def test_plates_are_compared_as_read() -> None:
    assert plate_key("苏A·D1234") == plate_key("苏a d1234") == "苏AD1234"
    assert plate_key("苏A·D1234") != plate_key("苏A·D1235")
    assert plate_key("川A00001") != plate_key("川A00002")
    with pytest.raises(ConfigError, match="is no plate"):
        from telemetry.config import HubConfig

        bad = HubConfig.model_validate(
            {
                "version": 1,
                "tenants": [{"id": "t", "vehicles": [{"id": "v", "plate": "·", "class": "coach"}]}],
            }
        )
        check_plates(bad, "x")
