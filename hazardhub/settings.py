"""Loading configuration files: the hub config, device profiles and rule packs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from telemetry.config import DeviceProfile, HubConfig, RulePack
from telemetry.errors import ConfigError
from telemetry.registry import Registry, build_registry, parse_document

__all__ = [
    "Loaded",
    "default_profiles_dir",
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


def default_profiles_dir() -> Path:
    """``$HAZARDHUB_PROFILES``, else ``./profiles``, else the checkout's ``profiles/``."""
    env = os.environ.get("HAZARDHUB_PROFILES")
    if env:
        return Path(env)
    here = Path.cwd() / "profiles"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "profiles"


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

    def registry(self, config: HubConfig | None = None) -> Registry:
        return build_registry(config or self.config, self.profiles, self.packs, str(self.path))


def load(config_path: Path, profile_dirs: Iterable[Path] | None = None) -> Loaded:
    config = parse_document(read_text(config_path), HubConfig, str(config_path))
    profiles: list[DeviceProfile] = []
    packs: list[RulePack] = []
    for root in profile_dirs if profile_dirs is not None else [default_profiles_dir()]:
        p, r = load_profiles(root)
        profiles.extend(p)
        packs.extend(r)
    return Loaded(config_path, config, tuple(profiles), tuple(packs))


def load_registry(config_path: Path, profile_dirs: Iterable[Path] | None = None) -> Registry:
    """Read and check a configuration with the profiles it refers to."""
    return load(config_path, profile_dirs).registry()


def running_registry(loaded: Loaded, data_dir: Path) -> Registry:
    """The configuration a hub with `data_dir` runs (or will at its next start): its newest
    revision (changes made through the API) unless the file changed since the hub last read it,
    in which case the file. Reads only; records nothing."""
    from api.configadmin import document_digest, revision_to_run, validate
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
