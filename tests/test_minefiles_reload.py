"""A drafted mine merged into the running hub's configuration is taken without a restart: its
new device profile, device and sensors, imported through the configuration API
(PUT /api/v1/config), as docs/minefiles.md says."""

from __future__ import annotations

import yaml
from test_api_alarms import KEYS, auth
from test_api_config_yaml import YAML, live_client

from gateway.minefiles.draft import draft

from e2e_helpers import shipped_profiles
from minefiles_rig import MINE, point_def

PACKS = {p.name: p for p in shipped_profiles()[1]}


async def test_a_drafted_profile_and_device_are_taken_by_a_config_import(tmp_path) -> None:
    async with live_client(tmp_path, KEYS) as client:
        before = await client.get(f"/api/v1/sensors/{MINE}-001A01", headers=auth("admin"))
        assert before.status_code == 404
        exported = await client.get("/api/v1/config", headers=auth("admin"))
        running = yaml.safe_load(exported.text)
        tenant = running["tenants"][0]
        site = tenant["sites"][0]
        made = draft(
            MINE,
            [point_def("001A01", 1.0, "1301回风巷"), point_def("001A02", 1.0, "1301工作面")],
            PACKS,
            tenant=tenant["id"],
            site=site["id"],
            gateway="kj-files",
            source="x.txt",
            period=(10.0, 0),
            device="kj-mine",
        )
        drafted = yaml.safe_load(made.hub)
        running.setdefault("device_profiles", []).extend(drafted["device_profiles"])
        site.setdefault("devices", []).extend(drafted["tenants"][0]["sites"][0]["devices"])
        r = await client.put(
            "/api/v1/config?comment=mine+140211000001",
            content=yaml.safe_dump(running, allow_unicode=True, sort_keys=False),
            headers={**auth("admin"), **YAML},
        )
        assert r.status_code == 200, r.text
        sensor = await client.get(f"/api/v1/sensors/{MINE}-001A01", headers=auth("admin"))
        assert sensor.status_code == 200, sensor.text
        assert (sensor.json()["device"], sensor.json()["rule"]) == (
            "kj-mine",
            "coal-methane.return-t2",
        )
