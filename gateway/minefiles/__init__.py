"""The mine-files gateway: MT/T 1201 networking files from a coal mine's safety-monitoring
system (uploaded by FTP into a folder) -> the hub's readings over MQTT (docs/minefiles.md)."""

from __future__ import annotations

from gateway.minefiles.config import MineFilesConfig, Mines, MineSpec, resolve
from gateway.minefiles.points import Finding, check, load_points
from gateway.minefiles.service import MineFilesGateway

__all__ = [
    "Finding",
    "MineFilesConfig",
    "MineFilesGateway",
    "MineSpec",
    "Mines",
    "check",
    "load_points",
    "resolve",
]
