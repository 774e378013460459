"""The embedded store's upkeep: the 1-minute rollups brought up to date, and what retention no
longer keeps deleted (by one cut-off, or per domain of the regulations' `RetentionPolicy`). The
statements run on the store's worker thread (`ingest.store.sqlite`)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from ingest.store.retention import DOMAINS, RetentionPolicy
from ingest.store.sqlite_db import transaction
from ingest.store.sqlite_sql import (
    DELETE_ALARM_EVENTS,
    DELETE_LATEST_OF,
    DELETE_POSITIONS_OF,
    DELETE_READINGS_OF,
    DELETE_ROLLUPS_OF,
    REFRESH_ALL,
)

__all__ = [
    "RetentionReport",
    "delete_before",
    "delete_expired",
    "refresh_all",
    "refresh_rollups",
]


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """Rows deleted by one `SqliteStore.apply_retention`."""

    readings: int
    rollups: int
    positions: int
    alarm_events: int


def delete_before(conn: sqlite3.Connection, cutoff: int) -> int:
    """Delete readings and positions with ts < cutoff; how many rows went."""
    with transaction(conn):
        n = conn.execute("DELETE FROM readings WHERE ts < ?", (cutoff,)).rowcount
        n += conn.execute("DELETE FROM positions WHERE ts < ?", (cutoff,)).rowcount
        conn.execute("DELETE FROM latest WHERE ts < ?", (cutoff,))
    return int(n)


def delete_expired(
    conn: sqlite3.Connection,
    now_ms: int,
    policy: RetentionPolicy,
    by_domain: dict[str, list[int]],
) -> RetentionReport:
    """Apply `policy` to the sids of each domain (`by_domain`), the rollups brought up to date
    first; sensors no longer configured (and in no domain) keep the longest raw and statistics
    times of any domain."""
    known = {sid for sids in by_domain.values() for sid in sids}
    longest_raw = max(policy.raw_ms(d) for d in DOMAINS)
    longest_stats = max(policy.stats_ms(d) for d in DOMAINS)
    gone = [int(r[0]) for r in conn.execute("SELECT sid FROM sensors WHERE idx IS NULL").fetchall()]
    groups = [
        (json.dumps(by_domain[d]), policy.raw_ms(d), policy.stats_ms(d), d == "vehicle")
        for d in DOMAINS
    ]
    groups.append(
        (json.dumps([g for g in gone if g not in known]), longest_raw, longest_stats, True)
    )
    counts = [0, 0, 0, 0]
    with transaction(conn):
        refresh_all(conn)
        for sids, raw_ms, stats_ms, has_positions in groups:
            raw = {"sids": sids, "cutoff": now_ms - raw_ms}
            counts[0] += conn.execute(DELETE_READINGS_OF, raw).rowcount
            conn.execute(DELETE_LATEST_OF, raw)
            stats = {"sids": sids, "cutoff": now_ms - stats_ms}
            counts[1] += conn.execute(DELETE_ROLLUPS_OF, stats).rowcount
            if has_positions:
                counts[2] += conn.execute(DELETE_POSITIONS_OF, raw).rowcount
        cutoff = {"cutoff": now_ms - policy.alarm_days * 86_400_000}
        counts[3] = conn.execute(DELETE_ALARM_EVENTS, cutoff).rowcount
    return RetentionReport(*counts)


def refresh_rollups(conn: sqlite3.Connection) -> None:
    """Bring every 1-minute rollup up to date with the raw rows written since."""
    with transaction(conn):
        refresh_all(conn)


def refresh_all(conn: sqlite3.Connection) -> None:
    """`refresh_rollups` inside the caller's transaction."""
    for stmt in REFRESH_ALL:
        conn.execute(stmt)
