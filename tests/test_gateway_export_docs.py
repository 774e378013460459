"""The recipe of docs/operations.md that exports a tenant's part of the hub's configuration for its
gateway, run as written (its jq program read from the doc) on a running hub whose configuration
has inline `device_profiles` (helper-233's deploy review: the tenant alone, from
`/api/v1/registry/tenants/{t}`, was refused by `hazardhub check`: no device profile named ...)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from api.auth import hash_key
from hazardhub.cli import main
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load
from telemetry.config import ApiKeySpec

from e2e_helpers import ROOT, running_hub
from services import MosquittoService, free_port

CONFIG = """
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1401
        kind: mine
        devices:
          - id: kj
            profile: mine-140211000001
            gateway: kj-files
            sensors:
              - {id: t2-return, point: 001A01, kind: methane, rule: coal-methane.return-t2}
    vehicles:
      - {id: car-1, plate: 晋A·12345, class: hazmat}
  - id: acme-chem
    sites:
      - id: tank-farm
        kind: chemical
        devices:
          - id: gas-panel
            profile: lel-panel-4
            modbus: {host: 127.0.0.1, port: 1502, unit: 1}
            sensors:
              - {id: gd-101a, point: lel1, kind: flammable_gas, rule: chem-gas.flammable-lel}
device_profiles:
  - name: mine-140211000001
    points:
      - {name: 001A01, address: 0, unit: "%CH4"}
"""


def _jq_program() -> str:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    found = re.search(r"\| jq --arg t north-coal '(.*?)' \\\n", text, re.S)
    assert found is not None, "the export recipe's jq program in docs/operations.md"
    return found.group(1)


async def test_the_exported_part_of_a_tenant_passes_check(
    mosquitto: MosquittoService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("jq") is None:  # (never skipped: `make test` installs it)
        pytest.fail("jq is not installed: run make test", False)
    source = tmp_path / "hub.yaml"
    source.write_text(CONFIG, encoding="utf-8")
    admin = "hh_admin_export_test"
    api_port = free_port()
    loaded = load(source, [ROOT / "profiles"])
    hub = Hub(
        loaded.registry(),
        HubSettings(data_dir=tmp_path / "data", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="admin", sha256=hash_key(admin), role="admin")],
        build=loaded.registry,
    )
    base = f"http://127.0.0.1:{api_port}"
    async with running_hub(hub), httpx.AsyncClient(base_url=base) as api:
        answer = await api.get(
            "/api/v1/config?format=json", headers={"Authorization": f"Bearer {admin}"}
        )
    assert answer.status_code == 200, answer.text
    exported = subprocess.run(
        ["jq", "--arg", "t", "north-coal", _jq_program()],
        input=answer.text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    part = tmp_path / "north-coal.json"
    part.write_text(exported, encoding="utf-8")
    assert main(["check", "-c", str(part)]) == 0, capsys.readouterr()
    assert "ok: 1 tenant, 1 device, 1 sensor" in capsys.readouterr().out
    document = yaml.safe_load(exported)
    assert [t["id"] for t in document["tenants"]] == ["north-coal"]
    assert "api_keys" not in document and "vehicles" not in document["tenants"][0]
