"""What the JT/T 808 gateway keeps in its spool folder across a restart: the vehicles it served
and the alarm confirmations kept for their terminals (`gateway.jt808.server`). Files are written
aside and renamed (never half a file); a failure to write or read is logged, not raised: only the
confirmations of a restart are at stake."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from gateway.jt808.confirmations import HeldConfirmations
from gateway.jt808.directory import VehicleRef

__all__ = ["read_held", "read_served", "write_aside", "write_held", "write_served"]

log = logging.getLogger("gateway.jt808.server")


def write_aside(path: Path | None, data: bytes, what: str) -> None:
    """Write `data` to `path` (aside and renamed: never half a file); a failure is logged (only
    the confirmations of a restart are at stake)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("jt808: %s not written to %s: %s", what, path, exc)


def read_held(held: HeldConfirmations, path: Path | None) -> None:
    """Take up the confirmations kept before a restart (none without a file; an unreadable
    one is logged)."""
    if path is None or not path.exists():
        return
    try:
        n = held.load(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("jt808: %s not read (%s): the confirmations kept before are lost", path, exc)
        return
    if n:
        log.info("jt808: %d alarm confirmation(s) kept before the restart taken up", n)


def read_served(path: Path | None) -> set[VehicleRef]:
    """The vehicles served here before a restart (none without a file, or with an unreadable
    one, logged)."""
    if path is None or not path.exists():
        return set()
    try:
        return {VehicleRef(str(t), str(v)) for t, v in orjson.loads(path.read_bytes())}
    except (OSError, ValueError, TypeError) as exc:
        log.warning("jt808: %s not read (%s): nothing kept until terminals come back", path, exc)
        return set()


def write_served(path: Path | None, served: set[VehicleRef]) -> None:
    """Keep the vehicles served here in their file."""
    data = orjson.dumps(sorted([r.tenant, r.vehicle] for r in served))
    write_aside(path, data, "the vehicles served here")


def write_held(path: Path | None, held: HeldConfirmations) -> None:
    """Keep the confirmations kept in their file."""
    write_aside(path, held.dump(), "the alarm confirmations kept")
