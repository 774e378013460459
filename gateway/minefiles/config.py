"""The mine-files gateway's configuration: the FTP upload folder, each mine's tenant, site and
point map, and what a status field means (docs/minefiles.md).

Pure models (pydantic v2, frozen); `resolve` checks them against the hub's registry once, at
the start, into the lookup the gateway uses: (mine code, point code) -> the hub's sensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from telemetry.configbase import Frozen, Ident
from telemetry.errors import ConfigError
from telemetry.mt1201text import Encoding
from telemetry.quality import Quality
from telemetry.registry import Registry
from telemetry.registrytypes import SensorInfo

__all__ = [
    "BUILTIN_STATUS",
    "MineFilesConfig",
    "MineSpec",
    "Mines",
    "QualityName",
    "apart",
    "resolve",
]

MineCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{6,32}$")]
PointCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
QualityName = Literal[
    "good", "sensor_fault", "out_of_range", "comm_loss", "stale", "manual", "calibration"
]

# what the words of a status field mean to the hub. A mine system's state that is about the
# place, not the measurement (alarm, power cut, feed abnormal), keeps the value good: the hub
# judges the value by its own rule pack. Numeric codes are vendor- or province-specific and
# not verified (docs/minefiles.md): "0" (normal) is the one seen; map the others in `status:`
BUILTIN_STATUS: dict[str, QualityName] = {
    "": "good",
    "0": "good",
    "正常": "good",
    "报警": "good",
    "断电": "good",
    "报警断电": "good",
    "复电": "good",
    "馈电异常": "good",
    "预警": "good",
    "故障": "sensor_fault",
    "传感器故障": "sensor_fault",
    "断线": "sensor_fault",
    "负漂": "sensor_fault",
    "标校": "calibration",
    "调校": "calibration",
    "校准": "calibration",
    "标定": "calibration",
    "调试": "calibration",
    "溢出": "out_of_range",
    "超量程": "out_of_range",
    "上溢": "out_of_range",
    "下溢": "out_of_range",
    "分站故障": "comm_loss",
    "通讯中断": "comm_loss",
    "通信中断": "comm_loss",
    "中断": "comm_loss",
}


# what an operator may call a mine's encoding, as the reader knows it (GB18030 reads GBK and
# GB2312 files: a superset of both)
_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "gb-18030": "gb18030", "utf8": "utf-8"}


def _encoding(value: object) -> object:
    return _ALIASES.get(value.lower(), value.lower()) if isinstance(value, str) else value


class MineSpec(Frozen):
    tenant: Ident
    site: Ident
    name: str = Field(default="", max_length=200)
    folder: Path | None = Field(
        default=None,
        description="its FTP upload folder (its login's root, chrooted), of its own; default "
        "{incoming}/{mine code}; a relative one is under incoming",
    )
    points: dict[PointCode, Ident] = Field(
        default_factory=dict,
        description="point code -> the hub's sensor id; a point not listed is the sensor "
        "'{mine code}-{point code}' when the hub has one",
    )
    encoding: Annotated[Encoding, BeforeValidator(_encoding)] = Field(
        default="utf-8",
        description="what its system writes: utf-8, gb18030 (GBK, GB2312: many KJ systems' "
        "default; `gbk` and `gb2312` are taken as gb18030, which reads them) or auto (UTF-8 "
        "when the bytes are valid UTF-8, else GB18030)",
    )


class MineFilesConfig(Frozen):
    incoming: Path = Field(
        description="the folder of the mines' upload folders: each mine uploads into "
        "{incoming}/{mine code}/ (or its folder:)"
    )
    unsafe_shared_folder: bool = Field(
        default=False,
        description="every mine uploads into incoming itself and a file's mine is its name's "
        "alone: UNSAFE with several mines (any mine's FTP login can upload as another mine and "
        "read or delete the others' files); for one mine, or until the FTP logins each have a "
        "folder",
    )
    done: Path | None = Field(default=None, description="default: {incoming}/done")
    rejected: Path | None = Field(default=None, description="default: {incoming}/rejected")
    gateway: Ident = Field(
        default="kj-files", description="the name it publishes under (its MQTT login's)"
    )
    settle_s: float = Field(default=2.0, ge=0, le=3600)
    incomplete_after_s: float = Field(default=600.0, gt=0, le=86400)
    scan_s: float = Field(default=1.0, gt=0, le=600)
    max_files_in_flight: int = Field(default=16, ge=1, le=10000)
    max_file_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="a bigger file is refused unread (taking one needs some 20 times its size "
        "in memory)",
    )
    keep_days: float = Field(
        default=30.0,
        ge=0,
        le=36500,
        description="the day folders of done/ and rejected/ older than this are removed (looked "
        "at once an hour); 0: kept for ever",
    )
    status: dict[str, QualityName] = Field(
        default_factory=dict, description="status field -> quality, beside the built-in words"
    )
    mines: dict[MineCode, MineSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _apart(self) -> Self:
        """Each mine's upload folder is its own (never incoming, another's or inside one);
        done/ and rejected/ are in none of them (a mine's FTP login would read and delete what
        was taken), and never incoming or around it: the housekeeping removes whole day folders
        and old flat files of them."""
        problem = apart(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    def folder_of(self, mine: str) -> Path:
        """The folder `mine` uploads into (incoming itself with `unsafe_shared_folder`)."""
        if self.unsafe_shared_folder:
            return self.incoming
        folder = self.mines[mine].folder
        return self.incoming / (mine if folder is None else folder)

    @property
    def done_dir(self) -> Path:
        return self.done if self.done is not None else self.incoming / "done"

    @property
    def rejected_dir(self) -> Path:
        return self.rejected if self.rejected is not None else self.incoming / "rejected"

    def qualities(self) -> dict[str, int]:
        """Status text (stripped) -> quality code: the built-in words, then `status`."""
        merged = {**BUILTIN_STATUS, **{k.strip(): v for k, v in self.status.items()}}
        return {k: int(Quality[v.upper()]) for k, v in merged.items()}


def _abs(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def apart(c: MineFilesConfig) -> str | None:
    """Why the folders of `c` are not apart (`MineFilesConfig._apart`), or None."""
    incoming = _abs(c.incoming)
    areas: list[tuple[str, Path]] = []
    if not c.unsafe_shared_folder:
        areas = sorted(((m, _abs(c.folder_of(m))) for m in c.mines), key=lambda a: a[1].parts)
    for code, folder in areas:
        if folder == incoming:
            return (
                f"mines.{code}.folder: {folder} is incoming itself: each mine uploads into a "
                "folder of its own (or set unsafe_shared_folder: true, docs/minefiles.md)"
            )
    for (code, folder), (other, inner) in pairwise(areas):
        if inner.is_relative_to(folder):  # sorted by parts: one inside another is next to it
            return (
                f"mines.{other}: its upload folder {inner} is mine {code}'s ({folder}) or inside "
                "it: each mine uploads into a folder of its own, none inside another's"
            )
    for what, given in (("done", c.done_dir), ("rejected", c.rejected_dir)):
        where = _abs(given)
        if incoming == where or incoming.is_relative_to(where):
            return (
                f"{what}: {given} is the upload folder incoming: or holds it: the "
                "housekeeping would remove files not yet taken; give a folder of its own "
                f"(default {{incoming}}/{what})"
            )
        for code, folder in areas:
            if _overlap(where, folder):
                return (
                    f"{what}: {given} is mine {code}'s upload folder ({folder}), inside it or "
                    "holds it: its FTP login could read and delete the files taken; give a "
                    f"folder outside every mine's (default {{incoming}}/{what})"
                )
    return None


@dataclass(frozen=True, slots=True)
class Mines:
    """The configuration resolved against the hub's registry."""

    config: MineFilesConfig
    registry: Registry
    quality: dict[str, int]

    def sensor(self, mine: str, point: str) -> SensorInfo | None:
        spec = self.config.mines.get(mine)
        if spec is None:
            return None
        found = self.registry.sensor(spec.points.get(point, f"{mine}-{point}"))
        if found is None or (found.tenant, found.site) != (spec.tenant, spec.site):
            return None
        return found


def resolve(config: MineFilesConfig, registry: Registry, source: str) -> Mines:
    """Check every mine's tenant and site, and each mapped sensor (it must exist, of that
    tenant and site): ConfigError naming them all."""
    problems = []
    for code, mine in config.mines.items():
        if mine.site not in registry.sites_of(mine.tenant):
            problems.append(
                f"{source}: mines.{code}: tenant {mine.tenant!r} has no site {mine.site!r} in "
                "the hub's configuration"
            )
            continue
        for point, sensor_id in mine.points.items():
            info = registry.sensor(sensor_id)
            if info is None:
                problems.append(
                    f"{source}: mines.{code}.points.{point}: the hub has no sensor {sensor_id!r}"
                )
            elif (info.tenant, info.site) != (mine.tenant, mine.site):
                problems.append(
                    f"{source}: mines.{code}.points.{point}: sensor {sensor_id!r} is of "
                    f"{info.tenant}/{info.site}, not of the mine's {mine.tenant}/{mine.site}"
                )
    if problems:
        raise ConfigError("\n".join(problems))
    return Mines(config, registry, config.qualities())
