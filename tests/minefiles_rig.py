"""A mine's hub configuration and mine-files configuration for the mine-files tests, and a
file writer."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.minefiles import MineFilesConfig, Mines, resolve
from telemetry.config import HubConfig
from telemetry.mt1201 import Header, PointDef, Reading, file_name
from telemetry.mt1201text import Encoding
from telemetry.mt1201write import write
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import shipped_profiles

MINE = "140211000001"

# the points arrive as the mine names them: an inline profile whose point names are the codes
# (the register addresses are not used: nothing polls this device)
HUB_YAML = f"""
version: 1
device_profiles:
  - name: mt1201-kj
    points:
      - {{name: "001A01", address: 0, unit: "%CH4"}}
      - {{name: "001A02", address: 1, unit: "%CH4"}}
      - {{name: "001A03", address: 2, unit: ppm}}
      - {{name: "001A04", address: 3, unit: "%CH4"}}
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj
            profile: mt1201-kj
            gateway: kj-files
            sensors:
              - {{id: t2-return, point: "001A01", kind: methane, tag: T2,
                  rule: coal-methane.return-t2}}
              - {{id: t1-face, point: "001A02", kind: methane, tag: T1, rule: coal-methane.face-t1}}
              - {{id: {MINE}-001A03, point: "001A03", kind: co, rule: coal-gas.co}}
              - {{id: t0-corner, point: "001A04", kind: methane, tag: T0,
                  rule: coal-methane.upper-corner-t0}}
"""

# a new mine's site before its devices are drafted (draft-config)
SITE_ONLY_YAML = """
version: 1
tenants:
  - id: north-coal
    sites:
      - {id: face-1301, kind: mine}
"""


def hub_registry() -> Registry:
    config = parse_document(HUB_YAML, HubConfig, "mine.yaml")
    profiles, packs = shipped_profiles()
    return build_registry(config, profiles, packs, "mine.yaml")


def mines(incoming: Path, registry: Registry | None = None, **settings: object) -> Mines:
    """The mine's configuration; its upload folder ``{incoming}/{MINE}`` made (`upload`)."""
    doc = {
        "incoming": str(incoming),
        "settle_s": 0,
        "scan_s": 0.05,
        "status": {"8": "calibration"},
        "mines": {
            MINE: {
                "tenant": "north-coal",
                "site": "face-1301",
                "points": {"001A01": "t2-return", "001A02": "t1-face", "001A04": "t0-corner"},
            }
        },
        **settings,
    }
    config = MineFilesConfig.model_validate(doc)
    if not config.unsafe_shared_folder:  # the operator made each mine's FTP folder
        for code in config.mines:
            config.folder_of(code).mkdir(parents=True, exist_ok=True)
    return resolve(config, registry or hub_registry(), "mines.yaml")


def upload(incoming: Path) -> Path:
    """The mine's upload folder (its FTP login's root): ``{incoming}/{MINE}``."""
    return incoming / MINE


def now_s() -> int:
    """A whole second a little ago: a mine's data time (the hub refuses the future)."""
    return int(time.time()) - 5


def reading(point: str, value: float | None, status: str, at_ms: int) -> Reading:
    return Reading(point, "0001", "甲烷", "KJ-F01", value, "%CH4", status, at_ms)


def write_file(
    folder: Path, kind: str, records: list[object], at_ms: int, encoding: Encoding = "utf-8"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    header = Header(MINE, "北方一矿", "AQ", "安全监控系统", at_ms)
    path = folder / file_name(MINE, kind, at_ms)
    path.write_bytes(write(header, records, encoding))  # type: ignore[arg-type]
    return path


def point_def(point: str, alarm: float | None, location: str = "1301回风巷") -> PointDef:
    return PointDef(
        point, "0001", "甲烷", "KJ-F01", location, "%CH4", 4.0, 0.0, alarm, None, "", None
    )


def day_folder(name: str, taken_s: float | None = None) -> str:
    """The day folder a taken or refused file goes to: the date of its name's time (China time
    as written), or the China-time day it was taken (`taken_s`) for a name without one."""
    m = re.search(r"_([0-9]{4})([0-9]{2})([0-9]{2})[0-9]{6}\.txt$", name)
    if m is not None:
        return f"{m[1]}-{m[2]}-{m[3]}"
    assert taken_s is not None, f"{name} has no time: say when it was taken"
    return datetime.fromtimestamp(taken_s, timezone(timedelta(hours=8))).strftime("%Y-%m-%d")


def taken(incoming: Path, name: str, where: str = "done", taken_s: float | None = None) -> Path:
    """Where the file `name` taken from `incoming` is: ``{incoming}/{where}/{day}/{name}``."""
    return incoming / where / day_folder(name, taken_s) / name
