"""`hazardhub jt809` as an operator runs it: refused with a clear line when the platforms' file
or the gateway's name is wrong; run, it takes a platform's login and publishes its positions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import yaml
from jt808_helpers import ROOT, positions, until
from jt809_helpers import KEYS, PLATFORMS, LowerPlatform, gnss_2011

from services import free_port

HUB = """
version: 1
jt808_gateways: [jt808, jt809]
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
  - id: coach-co
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hazardhub", "jt809", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refusals(tmp_path: Path) -> None:
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB, encoding="utf-8")
    plats = tmp_path / "jt809.yaml"
    plats.write_text(yaml.safe_dump(PLATFORMS, allow_unicode=True), encoding="utf-8")
    r = _cli("-c", str(hub), "--platforms", str(plats), "--name", "other")
    assert r.returncode == 2 and "'other' is not in the configuration's jt808_gateways" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("platforms:\n  - {name: a, access_code: 1}\n", encoding="utf-8")
    r = _cli("-c", str(hub), "--platforms", str(bad))
    assert r.returncode == 2 and "platforms.0.user_id: Field required" in r.stderr


async def test_runs(mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB, encoding="utf-8")
    plats = tmp_path / "jt809.yaml"
    plats.write_text(yaml.safe_dump(PLATFORMS, allow_unicode=True), encoding="utf-8")
    port, metrics = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hazardhub", "jt809", "-c", str(hub), "--platforms", str(plats)),
        *("--listen", f"127.0.0.1:{port}", "--broker", f"127.0.0.1:{mosquitto.port}"),
        *("--spool-dir", str(tmp_path / "spool"), "--metrics", f"127.0.0.1:{metrics}"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        p = LowerPlatform(20180920, keys=KEYS, encrypt=True)
        for _ in range(100):
            try:
                await p.connect("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with positions(mosquitto.port) as got:
            assert await p.login(7001, b"s3cret!8") is not None
            when = datetime.now(UTC) - timedelta(seconds=5)
            await p.positions("苏AD1234", [gnss_2011(when, 31.0, 120.0, 40)])
            await until(lambda: got, within_s=10)
            # its counters for Prometheus (--metrics): the platform logged in, its positions
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(f"http://127.0.0.1:{metrics}/metrics")).text
            assert 'hazardhub_gateway_state{gateway="jt809",what="platforms_logged_in"} 1' in text
            assert 'counter="acme-gps.positions"} 1' in text, text
        await p.close()
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert got[0][0] == "hazardhub/v1/chem-logistics/vehicles/tanker-01/position"
    assert "s3cret" not in err.decode()


def test_data_dir_serves_the_configuration_the_hub_runs(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A vehicle added through the hub's API (a newer revision in its registry.db) is the
    gateway's with --data-dir; without it, the file's alone."""
    import gateway.jt809
    from api.configadmin import ConfigAdmin, document
    from api.registrydb import RegistryDB
    from hazardhub import cli
    from hazardhub.settings import load

    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB, encoding="utf-8")
    plats = tmp_path / "jt809.yaml"
    plats.write_text(yaml.safe_dump(PLATFORMS, allow_unicode=True), encoding="utf-8")
    loaded = load(hub)
    data = tmp_path / "data"
    db = RegistryDB(data / "registry.db")

    async def switch(registry, rev):  # type: ignore[no-untyped-def]
        return None

    admin = ConfigAdmin(db, loaded.registry, switch)
    admin.startup(loaded.registry(), str(hub))
    doc = document(loaded.config)
    doc["tenants"][0]["vehicles"].append({"id": "t9", "plate": "苏A·D9999", "class": "hazmat"})
    asyncio.run(admin.change(lambda _d: doc, actor="root", comment="t9", source="api"))
    db.close()
    served: list[set[str]] = []

    class Recorded:
        def __init__(self, platforms, registry, **kw: object) -> None:  # type: ignore[no-untyped-def]
            served.append({v for _, v in registry.vehicles})

        def metrics(self) -> tuple[dict[str, int], dict[str, float]]:
            return {}, {}

    monkeypatch.setattr(gateway.jt809, "Jt809Gateway", Recorded)
    monkeypatch.setattr(cli, "_run", lambda main: 0)
    base = ["jt809", "-c", str(hub), "--platforms", str(plats), "--spool-dir", str(tmp_path / "s")]
    assert cli.main(base) == 0
    assert cli.main([*base, "--data-dir", str(data)]) == 0
    assert served == [{"tanker-01"}, {"tanker-01", "t9"}]


def test_platforms_file_readable_by_others_is_warned(monkeypatch, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import gateway.jt809
    from hazardhub import cli

    hub = tmp_path / "hub.yaml"
    hub.write_text(HUB, encoding="utf-8")
    plats = tmp_path / "jt809.yaml"
    plats.write_text(yaml.safe_dump(PLATFORMS, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(
        gateway.jt809, "Jt809Gateway", lambda *a, **kw: SimpleNamespace(metrics=None)
    )
    monkeypatch.setattr(cli, "_run", lambda main: 0)
    args = ["jt809", "-c", str(hub), "--platforms", str(plats), "--spool-dir", str(tmp_path / "s")]
    plats.chmod(0o644)
    assert cli.main(args) == 0
    assert "is mode 0644: group or others may read it" in caplog.text
    caplog.clear()
    plats.chmod(0o600)
    assert cli.main(args) == 0
    assert "may read it" not in caplog.text
