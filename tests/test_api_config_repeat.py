"""A device profile with repeated points through the configuration API: imported, it is
exported with its channels written out (24 points and 24 status rules, no `repeat`), and that
export imports again as the same configuration (docs/configuration.md, Device profiles)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from test_api_alarms import KEYS, auth
from test_api_config_yaml import live_client
from test_profile_repeat import doc_example, written_out

YAML = {"Content-Type": "application/yaml"}


async def test_a_repeated_profile_is_exported_written_out_and_imports_again(
    tmp_path: Path,
) -> None:
    async with live_client(tmp_path, KEYS) as client:
        exported = await client.get("/api/v1/config", headers=auth("admin"))
        assert exported.status_code == 200
        data = yaml.safe_load(exported.text)
        site = data["tenants"][0]["sites"][0]
        device = copy.deepcopy(site["devices"][0])
        device.update(
            id="gp-1",
            profile="acme-gas-panel-12",
            sensors=[
                {
                    "id": "gp-1-gas7",
                    "point": "gas7",
                    "kind": "flammable_gas",
                    "rule": "chem-gas.flammable-lel",
                }
            ],
        )
        site["devices"].append(device)
        data["device_profiles"] = [*data.get("device_profiles", []), doc_example()]
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        r = await client.put("/api/v1/config", content=text, headers={**auth("admin"), **YAML})
        assert r.status_code == 200, r.text

        again = await client.get("/api/v1/config", headers=auth("admin"))
        assert again.status_code == 200
        doc = yaml.safe_load(again.text)
        (profile,) = [p for p in doc["device_profiles"] if p["name"] == "acme-gas-panel-12"]
        assert "repeat" not in again.text
        assert profile == written_out()  # every channel a point, every rule its own

        # the export imports as it is, and exports the same again
        r = await client.put(
            "/api/v1/config", content=again.text, headers={**auth("admin"), **YAML}
        )
        assert r.status_code == 200, r.text
        third = await client.get("/api/v1/config", headers=auth("admin"))
        assert yaml.safe_load(third.text) == doc
        sensor = await client.get("/api/v1/sensors/gp-1-gas7", headers=auth("admin"))
        assert sensor.status_code == 200, sensor.text
