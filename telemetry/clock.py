"""The hub's wall clock: ms since 1970, the unit of every time on the wire and in the state.

One reader of it for the processes (the hub, its API, ingest, the gateways): pure modules never
call it, their time is passed in (ARCHITECTURE.md); the I/O shells call it, or take it as a
`clock` argument with it as the default, so that a test can give its own.
"""

from __future__ import annotations

import time

__all__ = ["wall_ms"]


def wall_ms() -> int:
    """Now, in whole ms since 1970 (UTC), from the system's wall clock."""
    return time.time_ns() // 1_000_000
