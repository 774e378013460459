"""A configuration changed while the hub was stopped: at start the alarms of points gone and of
kinds their sensors' rules no longer judge are cleared, journaled and handed on with the first
batch; the others stay and are judged by the new rules."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from alerts.statedb import StateDB
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry, parse_document

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000_000


def registry(co: str, t1: str) -> Registry:
    """The face substation with the CO sensor's and T1's extra YAML (a frozen check, levels)."""
    text = f"""
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face
        devices:
          - id: sub
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: t1, point: ch4_t1, kind: methane, {t1}}}
              - {{id: co, point: co, kind: co, rule: coal-gas.co{co}}}
"""
    config = parse_document(text, HubConfig, "restart.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "restart.yaml")


T1_LEVELS = "levels: [{{name: alarm, tier: yellow, above: {above}, recover: {above}}}]"


def readings(reg: Registry, rows: list[tuple[str, int, float]]) -> ReadingBatch:
    n = len(rows)
    return ReadingBatch(
        np.array([reg.sensor(s).index for s, _, _ in rows], np.int32),
        np.array([t for _, t, _ in rows], np.int64),
        np.array([v for _, _, v in rows]),
        np.zeros(n, np.uint8),
        np.zeros(n, np.int64),
        np.arange(n, dtype=np.int64),
    )


async def hub(reg: Registry, folder: Path, state: bool) -> tuple[Dispatcher, StateDB, SqliteStore]:
    db = StateDB(folder / "state.db")
    store = SqliteStore(reg, folder / "ts.db")
    await store.open()
    file = folder / "analytics-state.npz" if state else None
    return Dispatcher(reg, store, db, Metrics(), state_file=file), db, store


async def test_alarms_of_kinds_no_longer_judged_are_cleared_at_start(tmp_path):
    """The frozen check removed and T1's threshold changed while stopped: the frozen alarm is
    cleared at start; T1's alarm stays (its rules still judge it) and the new threshold clears
    it in the normal way."""
    frozen = ", frozen: {after_s: 30, band: 0.5}"
    before = registry(frozen, T1_LEVELS.format(above=1.0))
    d, db, store = await hub(before, tmp_path, state=True)
    rows = [("co", T0 + k * 10_000, 3.0) for k in range(4)] + [("t1", T0, 1.2)]
    events = await d.judge(readings(before, rows), [], T0 + 31_000)
    assert sorted((e.sensor, e.side, e.kind) for e in events) == [
        ("co", "frozen", "raised"),
        ("t1", "above", "raised"),
    ]
    await d.save_state()
    await store.close()
    db.close()
    after = registry("", T1_LEVELS.format(above=1.5))
    d, db, store = await hub(after, tmp_path, state=True)
    try:
        assert [a.sensor for a in db.active_alarms()] == ["t1"]
        events = await d.judge(readings(after, [("t1", T0 + 40_000, 1.2)]), [], T0 + 41_000)
        assert sorted((e.sensor, e.side, e.kind, e.comment) for e in events) == [
            ("co", "frozen", "cleared", "configuration changed while stopped"),
            ("t1", "above", "cleared", ""),
        ]
    finally:
        await store.close()
        db.close()


async def test_a_restart_after_a_reload_keeps_the_alarms_the_new_rules_raised(tmp_path):
    """The state file may be older than the last reload: a restart with the reloaded
    configuration clears nothing (review: it cleared T1's alarm, raised under the new rules)."""
    before = registry("", T1_LEVELS.format(above=1.5))
    d, db, store = await hub(before, tmp_path, state=True)
    await d.save_state()
    after = registry("", T1_LEVELS.format(above=1.0))
    d.reload(after, T0)
    assert len(await d.judge(readings(after, [("t1", T0 + 1000, 1.2)]), [], T0 + 1100)) == 1
    await store.close()
    db.close()
    d, db, store = await hub(after, tmp_path, state=True)
    try:
        assert [a.sensor for a in db.active_alarms()] == ["t1"]
        assert await d.judge(readings(after, [("t1", T0 + 2000, 1.2)]), [], T0 + 2100) == []
    finally:
        await store.close()
        db.close()


async def test_a_locked_state_database_at_start_does_not_stop_the_hub(tmp_path):
    """Nothing to clear: no write at all; something to clear while another process holds the
    write lock: logged, left as it was, and the hub starts."""
    frozen = ", frozen: {after_s: 30, band: 0.5}"
    before = registry(frozen, T1_LEVELS.format(above=1.0))
    d, db, store = await hub(before, tmp_path, state=False)
    rows = [("co", T0 + k * 10_000, 3.0) for k in range(4)]
    assert len(await d.judge(readings(before, rows), [], T0 + 31_000)) == 1
    await store.close()
    db.close()
    other = sqlite3.connect(tmp_path / "state.db", timeout=0.1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        for reg in (before, registry("", T1_LEVELS.format(above=1.0))):
            d, db, store = await hub(reg, tmp_path, state=False)
            await store.close()
            assert [a.sensor for a in db.active_alarms()] == ["co"]
            db.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_without_a_saved_state_only_kinds_no_longer_judged_are_cleared(tmp_path):
    frozen = ", frozen: {after_s: 30, band: 0.5}"
    before = registry(frozen, T1_LEVELS.format(above=1.0))
    d, db, store = await hub(before, tmp_path, state=False)
    rows = [("co", T0 + k * 10_000, 3.0) for k in range(4)] + [("t1", T0, 1.2)]
    assert len(await d.judge(readings(before, rows), [], T0 + 31_000)) == 2
    await store.close()
    db.close()
    # the same configuration: both stay; without the frozen check: the frozen alarm goes
    for reg, left in ((before, ["co", "t1"]), (registry("", T1_LEVELS.format(above=1.0)), ["t1"])):
        d, db, store = await hub(reg, tmp_path, state=False)
        try:
            assert sorted(a.sensor for a in db.active_alarms()) == left
        finally:
            await store.close()
            db.close()


def bypass_registry(rule: str, on_delay_s: int = 40) -> Registry:
    """An interlock's bypass flag under `rule` of a pack of the site's own (h236's commissioning:
    the rule renamed while the hub was stopped)."""
    text = f"""
version: 1
rule_packs:
  - name: acme-sis
    rules:
      {rule}:
        kinds: [interlock]
        no_data_s: 10
        levels:
          - {{name: bypassed, tier: blue, above: 1, recover: 0.5}}
          - {{name: bypassed_too_long, tier: orange, above: 1, recover: 0.5,
             on_delay_s: {on_delay_s}}}
tenants:
  - id: acme
    sites:
      - id: farm
        devices:
          - id: sis-2
            profile: interlock-block
            modbus: {{host: 127.0.0.1, port: 1502, unit: 2}}
            sensors:
              - {{id: sis2-bypass, point: bypassed, kind: interlock, rule: acme-sis.{rule}}}
"""
    config = parse_document(text, HubConfig, "restart.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "restart.yaml")


def comm_loss(reg: Registry, ts: int) -> ReadingBatch:
    batch = readings(reg, [("sis2-bypass", ts, 0.0)])
    batch.quality[:] = Quality.COMM_LOSS
    return batch


async def test_a_comm_loss_at_a_restart_with_a_renamed_rule_is_raised_under_the_new_rule(tmp_path):
    """The device in comm loss when the hub stops, the flag's rule renamed meanwhile: at start
    the old rule's no-data alarm is closed, the gateway's comm-loss reading (the device not
    answering its first poll) raises the new rule's at once and its next reading clears it
    (h236's alarm #79). A rule changed under the same name keeps the open alarm: nothing is
    raised twice."""
    before = bypass_registry("interlock-bypass-8h")
    d, db, store = await hub(before, tmp_path, state=True)
    await d.judge(readings(before, [("sis2-bypass", T0, 0.0)]), [], T0)
    events = await d.judge(comm_loss(before, T0 + 5_000), [], T0 + 5_100)
    assert [(e.sensor, e.side, e.kind) for e in events if e.sensor == "sis2-bypass"] == [
        ("sis2-bypass", "no_data", "raised")
    ]
    await d.save_state()
    await store.close()
    db.close()
    after = bypass_registry("interlock-bypass-40s")
    d, db, store = await hub(after, tmp_path, state=True)
    try:
        got = await d.judge(comm_loss(after, T0 + 30_000), [], T0 + 32_000)
        got += await d.judge(readings(after, [("sis2-bypass", T0 + 31_000, 0.0)]), [], T0 + 32_100)
        mine = [(e.rule, e.side, e.kind, e.ts, e.comment) for e in got if e.sensor == "sis2-bypass"]
        old, new = "acme-sis.interlock-bypass-8h", "acme-sis.interlock-bypass-40s"
        assert sorted(mine) == sorted(
            [
                (old, "no_data", "cleared", mine[0][3], "configuration changed while stopped"),
                (new, "no_data", "raised", T0 + 30_000, ""),
                (new, "no_data", "cleared", T0 + 31_000, ""),
            ]
        ), mine
        again = await d.judge(comm_loss(after, T0 + 40_000), [], T0 + 40_100)
        assert [(e.side, e.kind) for e in again if e.sensor == "sis2-bypass"] == [
            ("no_data", "raised")
        ]
        await d.save_state()
    finally:
        await store.close()
        db.close()
    same = bypass_registry("interlock-bypass-40s", on_delay_s=60)  # changed, same name
    d, db, store = await hub(same, tmp_path, state=True)
    try:
        active = [(a.sensor, a.rule) for a in db.active_alarms() if a.sensor == "sis2-bypass"]
        assert active == [("sis2-bypass", "acme-sis.interlock-bypass-40s")]
        got = await d.judge(comm_loss(same, T0 + 50_000), [], T0 + 50_100)
        assert [e for e in got if e.sensor == "sis2-bypass"] == []
    finally:
        await store.close()
        db.close()
