"""The SQLite store's latest table (schema 3): kept in the write's transaction, it must always say
what the raw rows say (`LATEST_RAW`), whatever order readings arrive in, whatever is rewritten,
and whatever retention deletes; a schema-2 file gets it filled from its raw rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_store_sqlite import T0, idx, mixed_registry, readings, registry

from ingest.store.base import LatestValue
from ingest.store.retention import DOMAINS, DomainRetention, RetentionPolicy
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_sql import LATEST_RAW
from telemetry.quality import Quality

DAY = 86_400_000


async def from_raw_rows(store: SqliteStore, indices: list[int]) -> dict[int, LatestValue]:
    """The newest reading of each sensor, searched in the raw rows (the store's old query)."""
    sid_to_index = {int(store._sid[i]): i for i in indices}
    rows = await store._run(
        "raw", lambda c: c.execute(LATEST_RAW, (json.dumps(list(sid_to_index)),)).fetchall()
    )
    return {
        sid_to_index[sid]: LatestValue(ts, math.nan if v is None else v, q)
        for sid, ts, v, q in rows
    }


def same(a: dict[int, LatestValue], b: dict[int, LatestValue]) -> bool:
    def key(v: LatestValue) -> tuple[int, float | None, int]:
        return v.ts, None if math.isnan(v.value) else v.value, v.quality

    return a.keys() == b.keys() and all(key(a[k]) == key(b[k]) for k in a)


row = st.tuples(
    st.integers(0, 2),  # sensor index
    st.integers(0, 20),  # seconds after T0: few, so that times repeat
    st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(math.nan)),
    st.sampled_from([int(Quality.GOOD), int(Quality.COMM_LOSS), int(Quality.MANUAL)]),
)
step = st.one_of(
    st.lists(row, min_size=1, max_size=12).map(lambda rows: ("write", rows)),
    st.integers(0, 22).map(lambda s: ("retain", s)),
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_latest_agrees_with_the_raw_rows(steps: list[tuple[str, object]]) -> None:
    """Batches out of order, with repeated times inside and across batches, NaN, retention
    between them: after every step, for one sensor (a lookup) and for all (a pass), the latest
    table answers what the raw rows answer."""
    reg = registry({"d1": ["a", "b", "c"]})

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(reg, Path(tmp) / "ts.sqlite", rollup_every_s=0)
            await store.open()
            try:
                for kind, arg in steps:
                    if kind == "write":
                        rows = arg
                        assert isinstance(rows, list)
                        s, t, v, q = zip(*rows, strict=True)
                        batch = readings(list(s), [T0 + x * 1000 for x in t], list(v))
                        batch.quality[:] = q
                        await store.write_readings(batch)
                    else:
                        assert isinstance(arg, int)
                        await store.enforce_retention(T0 + arg * 1000, 0)
                    everyone = [0, 1, 2]
                    assert same(await store.latest(everyone), await from_raw_rows(store, everyone))
                    for one in everyone:
                        assert same(await store.latest([one]), await from_raw_rows(store, [one]))
            finally:
                await store.close()

    asyncio.run(run())


async def test_a_late_batch_does_not_move_latest_back_and_a_rewrite_does(tmp_path: Path) -> None:
    reg = registry({"d1": ["a", "b", "c"]})
    a = idx(reg, "a")
    store = SqliteStore(reg, tmp_path / "ts.sqlite")
    await store.open()
    try:
        await store.write_readings(readings(a, [T0 + 5000], [5.0]))
        await store.write_readings(readings(a, [T0 + 1000, T0 + 4999], [1.0, 4.0]))  # late
        assert (await store.latest([a]))[a].value == 5.0
        await store.write_readings(readings(a, [T0 + 5000, T0 + 5000], [6.0, 7.0]))  # rewrite
        assert (await store.latest([a]))[a] == LatestValue(T0 + 5000, 7.0, 0)
    finally:
        await store.close()


async def test_retention_per_domain_drops_latest_only_with_every_raw_row(tmp_path: Path) -> None:
    reg = mixed_registry()
    m, c = idx(reg, "m"), idx(reg, "c")
    store = SqliteStore(reg, tmp_path / "ts.sqlite", rollup_every_s=0)
    await store.open()
    try:
        await store.write_readings(readings(m, [T0 - 200 * DAY, T0 - 10 * DAY], [1.0, 2.0]))
        await store.write_readings(readings(c, [T0 - 200 * DAY, T0 - 100 * DAY], [3.0, 4.0]))
        await store.apply_retention(T0, RetentionPolicy())  # raw: mine 92 days, chemical 30
        assert await store.latest([m, c]) == {m: LatestValue(T0 - 10 * DAY, 2.0, 0)}
        assert same(await store.latest([m, c]), await from_raw_rows(store, [m, c]))
        short = RetentionPolicy(
            domains={d: DomainRetention(raw_days=1, stats_days=150) for d in DOMAINS}
        )
        await store.apply_retention(T0, short)
        assert await store.latest([m, c]) == {}
    finally:
        await store.close()


async def test_schema_2_file_gets_its_latest_table_filled(tmp_path: Path) -> None:
    reg = registry({"d1": ["a", "b", "c"]})
    path = tmp_path / "ts.sqlite"
    store = SqliteStore(reg, path)
    await store.open()
    await store.write_readings(readings([0, 0, 1], [T0 + 2000, T0 + 1000, T0], [2.0, 1.0, 9.0]))
    await store.close()
    with sqlite3.connect(path) as old:  # as a hub of schema 2 left it
        old.execute("DROP TABLE latest")
        old.execute("PRAGMA user_version = 2")
    old.close()
    store = SqliteStore(reg, path)
    await store.open()
    try:
        assert await store.latest([0, 1, 2]) == {
            0: LatestValue(T0 + 2000, 2.0, 0),
            1: LatestValue(T0, 9.0, 0),
        }
        await store.write_readings(readings(1, [T0 + 500], [8.0]))
        assert (await store.latest([1]))[1].value == 8.0
    finally:
        await store.close()
