"""The version of hazardhub: the installed package's (its metadata), else, in a checkout that is
not installed, the one pyproject.toml beside the packages says."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

__all__ = ["version"]

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    try:
        return importlib.metadata.version("hazardhub")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with _PYPROJECT.open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
