"""Bounds the API's routes share: the state database's largest integer (every id and time a
caller gives is at most this: a larger one was an `OverflowError` and a 500), and how far ahead
of the hub's clock a time a caller reports may be (a clock a little ahead of the hub's)."""

from __future__ import annotations

__all__ = ["DB_INT_MAX", "FUTURE_SKEW_MS"]

DB_INT_MAX = 2**63 - 1  # SQLite's integers: ids and times in ms
FUTURE_SKEW_MS = 60_000  # a reported time may be this far ahead of the hub's clock
