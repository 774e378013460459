"""Epoch-millisecond range parameters shared by the routes that take them: a time given in
seconds is refused with a message that says so, rather than read as a range in January 1970
that holds nothing (a supervisor's monthly review answered "0 activations" that way)."""

from __future__ import annotations

from fastapi import HTTPException, status

__all__ = ["SECONDS_FROM", "SECONDS_TO", "refuse_seconds"]

# A value in [SECONDS_FROM, SECONDS_TO) is a time in seconds from 2001-09-09 on (as ms it would
# be a moment between 12 January 1970 and March 1973, before any hub stored anything). Smaller
# values stay milliseconds: `start=0` is "from the beginning", and tests run on small clocks.
SECONDS_FROM = 10**9
SECONDS_TO = 10**11


def refuse_seconds(**given: int | None) -> None:
    """422 for each named value (`start=...`) that looks like seconds since the epoch."""
    for name, value in given.items():
        if value is not None and SECONDS_FROM <= value < SECONDS_TO:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{name}={value} looks like seconds since the epoch; times here are "
                f"milliseconds ({name}={value * 1000})",
            )
