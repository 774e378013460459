"""Loading configuration files: the hub config, device profiles and rule packs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from telemetry.config import DeviceProfile, HubConfig, RulePack
from telemetry.errors import ConfigError
from telemetry.registry import Registry, build_registry, parse_document

__all__ = [
    "SHIPPED_PROFILES",
    "Loaded",
    "default_profiles_dirs",
    "load",
    "load_profiles",
    "load_registry",
    "read_text",
    "running_registry",
]


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from exc


log = logging.getLogger("hazardhub.settings")

# the profiles and rule packs shipped with hazardhub (the regulations' rows): profiles/ beside the
# packages, in the checkout and in an installed site-packages alike (pyproject.toml's package data)
SHIPPED_PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def default_profiles_dirs() -> list[Path]:
    """Where profiles and rule packs are read, in order: the shipped ``profiles/``, then a site's
    own beside them: ``./profiles`` and each folder of ``$HAZARDHUB_PROFILES`` (separated by
    ``:``; one that is not a folder is an error). A later file of the same name replaces an
    earlier one (said in the log)."""
    dirs = [SHIPPED_PROFILES]
    here = Path.cwd() / "profiles"
    extra = [here] if here.is_dir() else []
    named = [Path(p) for p in os.environ.get("HAZARDHUB_PROFILES", "").split(os.pathsep) if p]
    for d in named:  # a typo or a volume not mounted would quietly run the shipped ones
        if not d.is_dir():
            raise ConfigError(f"$HAZARDHUB_PROFILES names {d}, which is not a folder")
    extra += named
    for d in extra:
        if not any(_same(d, seen) for seen in dirs):
            dirs.append(d)
    return dirs


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def load_profiles(root: Path) -> tuple[list[DeviceProfile], list[RulePack]]:
    profiles = [
        parse_document(read_text(p), DeviceProfile, str(p))
        for p in sorted((root / "devices").glob("*.yaml"))
    ]
    packs = [
        parse_document(read_text(p), RulePack, str(p))
        for p in sorted((root / "rules").glob("*.yaml"))
    ]
    for p, prof in zip(sorted((root / "devices").glob("*.yaml")), profiles, strict=True):
        if prof.name != p.stem:
            raise ConfigError(f"{p}: name: {prof.name!r} must match the file name {p.stem!r}")
    for p, pack in zip(sorted((root / "rules").glob("*.yaml")), packs, strict=True):
        if pack.name != p.stem:
            raise ConfigError(f"{p}: name: {pack.name!r} must match the file name {p.stem!r}")
    return profiles, packs


@dataclass(frozen=True, slots=True)
class Loaded:
    """A configuration file with the profiles and rule packs found beside it."""

    path: Path
    config: HubConfig
    profiles: tuple[DeviceProfile, ...]
    packs: tuple[RulePack, ...]
    dirs: tuple[Path, ...] = ()  # where they were read

    def registry(self, config: HubConfig | None = None) -> Registry:
        try:
            return build_registry(config or self.config, self.profiles, self.packs, str(self.path))
        except ConfigError as exc:
            said = str(exc)
            if self.dirs and ("no device profile named" in said or "no rule pack named" in said):
                read = ", ".join(str(d) for d in self.dirs)
                raise ConfigError(f"{said} (profiles and rule packs read from: {read})") from exc
            raise


def load(config_path: Path, profile_dirs: Iterable[Path] | None = None) -> Loaded:
    config = parse_document(read_text(config_path), HubConfig, str(config_path))
    profiles: dict[str, DeviceProfile] = {}
    packs: dict[str, RulePack] = {}
    came_from: dict[tuple[str, str], Path] = {}
    dirs = list(profile_dirs) if profile_dirs is not None else default_profiles_dirs()
    for root in dirs:
        p, r = load_profiles(root)
        for kind, found, into in (("device profile", p, profiles), ("rule pack", r, packs)):
            for item in found:
                before = came_from.get((kind, item.name))
                if before is not None and not _same(before, root):
                    log.warning("%s %r of %s replaces the one of %s", kind, item.name, root, before)
                came_from[(kind, item.name)] = root
                into[item.name] = item  # type: ignore[assignment]
    return Loaded(config_path, config, tuple(profiles.values()), tuple(packs.values()), tuple(dirs))


def load_registry(config_path: Path, profile_dirs: Iterable[Path] | None = None) -> Registry:
    """Read and check a configuration with the profiles it refers to."""
    return load(config_path, profile_dirs).registry()


def running_registry(loaded: Loaded, data_dir: Path) -> Registry:
    """The configuration a hub with `data_dir` runs (or will at its next start): its newest
    revision (changes made through the API) unless the file changed since the hub last read it,
    in which case the file. Reads only; records nothing."""
    from api.configadmin import document_digest, revision_to_run
    from api.configdoc import validate
    from api.registrydb import RegistryDB

    path = data_dir / "registry.db"
    if not path.exists():
        return loaded.registry()
    db = RegistryDB(path)
    try:
        latest = revision_to_run(db, document_digest(loaded.config))
    finally:
        db.close()
    return loaded.registry() if latest is None else loaded.registry(validate(latest.document))


def registry_follower(loaded: Loaded, data_dir: Path) -> Callable[[], Registry | None]:
    """A check of the configuration a hub with `data_dir` runs: the registry when its newest
    revision is another than at the last check (the first check: always), else None. For a
    process beside the hub (`hazardhub jt808 --data-dir`) that must serve what the API adds."""
    from api.registrydb import RegistryDB

    path = data_dir / "registry.db"
    seen: list[object] = [object()]  # nothing seen yet

    def check() -> Registry | None:
        rev: object = None
        if path.exists():
            db = RegistryDB(path)
            try:
                latest = db.latest_revision()
            finally:
                db.close()
            rev = None if latest is None else latest.rev
        if rev == seen[0]:
            return None
        seen[0] = rev
        return running_registry(loaded, data_dir)

    return check


def beside_hub(
    loaded: Loaded, data_dir: Path | None
) -> tuple[Registry, Callable[[], Registry | None] | None]:
    """The registry a gateway serves at its start, and with `data_dir` (the hub's, same host) the
    follower of the configuration the hub runs (`registry_follower`: its first check gives it)."""
    follow = registry_follower(loaded, data_dir) if data_dir else None
    first = follow() if follow is not None else None  # the first check always gives it
    return (first if first is not None else loaded.registry()), follow


def vehicle_gateway_problem(name: str, registry: Registry) -> str | None:
    """Why a JT/T 808 or 809 gateway may not run under `name` (one the hub does not watch), or
    None."""
    if name in registry.config.jt808_gateways:
        return None
    return (
        f"gateway name {name!r} is not in the configuration's jt808_gateways "
        f"{list(registry.config.jt808_gateways)}: the hub would not watch its status and its "
        "MQTT login could not report drops; add it there"
    )
