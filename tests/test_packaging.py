"""A non-editable install: the wheel holds the shipped device profiles and rule packs, and a hub
installed from it finds them (helper-149: `check` failed with "no device profile named
'tank-rtu'" once only the packages were installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout (a build in the checkout would
    leave build/ and *.egg-info in it). pip fetches the build backend (setuptools) from the
    package index: that needs the network."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
        symlinks=True,
    )
    out = tmp / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 and "setuptools" in done.stderr and "version" in done.stderr:
        pytest.skip(f"cannot fetch the build backend: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("hazardhub-*.whl")
    return found


def test_the_wheel_holds_every_shipped_profile_and_rule_pack(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        p.relative_to(ROOT).as_posix()
        for p in [*PROFILES.glob("devices/*.yaml"), *PROFILES.glob("rules/*.yaml")]
    }
    assert len(shipped) >= 16
    assert shipped <= names, sorted(shipped - names)


def test_an_installed_hub_finds_the_shipped_profiles(wheel: Path, tmp_path: Path) -> None:
    """The wheel unpacked as site-packages would hold it, run from a folder with no profiles/
    (systemd runs a unit in /): the demo configuration's profiles and packs are found."""
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = elsewhere / "demo.yaml"
    shutil.copy(ROOT / "examples" / "demo.yaml", config)
    env = {k: v for k, v in os.environ.items() if k != "HAZARDHUB_PROFILES"}
    env["PYTHONPATH"] = str(site)  # before the checkout's editable install
    code = (
        "import hazardhub.settings as s, hazardhub.cli as c; "
        "print(s.SHIPPED_PROFILES, flush=True); "
        "raise SystemExit(c.main(['check', '-c', 'demo.yaml']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    where, said = done.stdout.splitlines()[:2]
    assert Path(where) == site / "profiles"
    assert "ok: 3 tenants" in said
