"""The alarm -> hazard rules beyond "active longer than after_h" (DOMAIN 6's rules to offer),
each on a real hub (a dispatcher judging readings into alarms over a state database, its tick
opening the items): repeats at one point (once per run of repeats, a new run after within_h
quiet, over a restart), an interlock bypassed beyond its allowed time (`rules:` and `levels:`,
at once), a power cut not confirmed (action_failed raised and cleared between two looks), and
the configuration's checks (the docs' example block validates)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_hazards import HOUR, T0
from test_lock_tests import CONFIG, batch

from alerts import hazardrules
from alerts.hazardflow import DAY_MS
from alerts.hazards import HazardFilter, HazardItem, insert_item, item_events, list_items
from alerts.kinds import BYPASS_UNAPPROVED
from alerts.statedb import StateDB
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

PLAN = ",\n                 verify: {{sensor: feed, expect_below: 0.5, within_s: 2}}"
CHEM = """
  - id: hx-chem
    sites:
      - id: tank-farm
        kind: chemical
        devices:
          - id: sis-1
            profile: interlock-block
            modbus: {host: 127.0.0.1, port: 1503, unit: 1}
            sensors:
              - {id: sis-bypass, point: bypassed, kind: interlock,
                 rule: chem-process.interlock-bypass, location: T-101 进料联锁}
"""


def hub_registry(rules: str, plan: bool = False) -> Registry:
    text = CONFIG.format(t1_plan=PLAN.format() if plan else "") + CHEM + rules
    config = parse_document(text, HubConfig, "rules.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "rules.yaml")


class Rig:
    def __init__(self, tmp_path: Path, reg: Registry) -> None:
        self.reg = reg
        self.db = StateDB(tmp_path / "state.db")
        self.store = SqliteStore(reg, tmp_path / "ts.db")
        self.d = Dispatcher(reg, self.store, self.db, Metrics())
        self.seq = 0

    async def read(self, sensor: str, ts: int, value: float) -> None:
        info = self.reg.sensor(sensor)
        assert info is not None
        self.seq += 1
        await self.d.judge(batch(info.index, ts, value, self.seq), [], ts + 100)

    async def held(self, sensor: str, start: int, end: int, value: float) -> None:
        """The sensor read `value` every 30 s from `start` to `end` (one batch)."""
        info = self.reg.sensor(sensor)
        assert info is not None
        ts = np.arange(start, end + 1, 30_000, dtype=np.int64)
        seq = np.arange(self.seq + 1, self.seq + 1 + ts.size, dtype=np.int64)
        self.seq += ts.size
        readings = ReadingBatch(
            np.full(ts.size, info.index, np.int32), ts, np.full(ts.size, value),
            np.zeros(ts.size, np.uint8), np.zeros(ts.size, np.int64), seq,
        )  # fmt: skip
        await self.d.judge(readings, [], end + 100)

    def items(self) -> list[HazardItem]:
        return sorted(list_items(self.db, HazardFilter(None), 100), key=lambda i: i.id)

    def restart(self) -> None:
        self.d = Dispatcher(self.reg, self.store, self.db, Metrics())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Rig] = []

    async def make(rules: str, plan: bool = False) -> Rig:
        folder = tmp_path / str(len(made))
        folder.mkdir()
        r = Rig(folder, hub_registry(rules, plan))
        await r.store.open()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.store.close()
        r.db.close()


REPEATS = """
hazards:
  from_alarms:
    - {kinds: [above], repeats: {n: 3, within_h: 24}, category: 超限, tenants: [north-coal]}
"""


async def test_repeated_over_limit_opens_one_item_per_run_of_repeats(rig: Any) -> None:
    r: Rig = await rig(REPEATS)

    async def over_limit(at: int) -> None:  # 1.6 % CH4 for ten minutes, then back
        await r.read("ch4-t1", at, 1.6)
        await r.read("ch4-t1", at + 600_000, 0.1)
        await r.d.tick(at + 600_000 + 60_000)

    await over_limit(T0)
    await over_limit(T0 + 2 * HOUR)
    assert r.items() == []  # two: not yet
    await over_limit(T0 + 4 * HOUR)
    (first,) = r.items()
    alarms = sorted(
        (a for a in r.db.query("SELECT id, side FROM alarms WHERE sensor = 'ch4-t1'")),
        key=lambda a: a[0],
    )
    assert len(alarms) == 3
    assert first.alarm_ids == tuple(a[0] for a in alarms)
    assert (first.source, first.category, first.sensor_ids) == (
        "monitoring_alarm", "超限", ("ch4-t1",)
    )  # fmt: skip
    assert first.found_at == T0 + 4 * HOUR  # the third's start
    assert "3 次 / 24 h 内重复" in first.description
    (report,) = item_events(r.db, first.id)
    assert (report.actor, report.party) == (None, "hub")
    # the run goes on (each within 24 h of the one before): nothing more, over a restart too
    await over_limit(T0 + 6 * HOUR)
    await over_limit(T0 + 8 * HOUR)
    r.restart()
    await over_limit(T0 + 10 * HOUR)  # (three more within 24 h: still the same run)
    await over_limit(T0 + 28 * HOUR)
    await over_limit(T0 + 50 * HOUR)
    assert len(r.items()) == 1
    # 24 h quiet ends the run: the next three open a new item
    quiet = T0 + 50 * HOUR + DAY_MS + HOUR
    await over_limit(quiet)
    await over_limit(quiet + HOUR)
    assert len(r.items()) == 1
    r.restart()
    await over_limit(quiet + 2 * HOUR)
    first_again, second = r.items()
    assert first_again == first and len(second.alarm_ids) == 3
    assert second.found_at == quiet + 2 * HOUR
    await r.d.tick(quiet + 3 * HOUR)
    assert len(r.items()) == 2


async def test_three_alarms_spread_beyond_within_h_open_nothing(rig: Any) -> None:
    r: Rig = await rig(REPEATS)
    for k in range(4):  # 13 h apart: never three within 24 h
        at = T0 + k * 13 * HOUR
        await r.read("ch4-t1", at, 1.6)
        await r.read("ch4-t1", at + 600_000, 0.1)
        await r.d.tick(at + 700_000)
    assert len(r.db.query("SELECT id FROM alarms WHERE sensor = 'ch4-t1'")) == 4
    assert r.items() == []


_BYPASS_LEVEL = "SELECT level_name FROM alarms WHERE side != ? "
BYPASS = """
hazards:
  from_alarms:
    - {rules: [chem-process.interlock-bypass], levels: [bypassed_too_long], after_h: 0,
       category: 联锁, grade: major}
"""


async def test_an_interlock_bypassed_beyond_its_allowed_time_opens_a_major_item_at_once(
    rig: Any,
) -> None:
    r: Rig = await rig(BYPASS)
    await r.held("sis-bypass", T0, T0 + 4 * HOUR, 1.0)  # (read every 30 s: no gap, no no-data)
    await r.d.tick(T0 + 4 * HOUR + 1000)
    # (the bypass has no written approval either: its bypass_unapproved alarm is apart)
    ((bypassed,),) = r.db.query(_BYPASS_LEVEL + "AND sensor = 'sis-bypass'", (BYPASS_UNAPPROVED,))
    assert bypassed == "bypassed"  # told (blue), not beyond its 8 h: no item
    assert r.items() == []
    await r.held("sis-bypass", T0 + 4 * HOUR + 30_000, T0 + 8 * HOUR + 30_000, 1.0)
    await r.d.tick(T0 + 8 * HOUR + 31_000)
    (made,) = r.items()
    ((alarm_id, level),) = r.db.query(
        "SELECT id, level_name FROM alarms WHERE state = 'active' AND side != ?",
        (BYPASS_UNAPPROVED,),
    )
    assert level == "bypassed_too_long"
    assert (made.tenant, made.site, made.grade, made.category) == (
        "hx-chem", "tank-farm", "major", "联锁"
    )  # fmt: skip
    assert (made.alarm_ids, made.location) == ((alarm_id,), "T-101 进料联锁")
    assert "(bypassed_too_long)" in made.description and "at once" in made.description
    r.restart()
    await r.d.tick(T0 + 9 * HOUR)
    assert len(r.items()) == 1  # once per alarm


POWER_CUT = """
hazards:
  from_alarms:
    - {kinds: [action_failed], after_h: 0, category: 馈电异常, tenants: [north-coal]}
"""


async def test_a_power_cut_confirmed_late_opens_an_item_though_cleared_before_the_look(
    rig: Any,
) -> None:
    r: Rig = await rig(POWER_CUT, plan=True)
    at = T0 + HOUR
    await r.read("feed", at - 1000, 1.0)
    await r.d.tick(at - 500)
    await r.read("ch4-t1", at, 1.6)  # the power-cut level: the feed must drop within 2 s
    await r.read("feed", at + 3000, 0.0)  # 3 s: too late (馈电异常), then confirmed
    rows = r.db.query("SELECT id, side, state FROM alarms WHERE rule = 'coal-methane.face-t1'")
    failed = [row for row in rows if row[1] == 4]  # (ACTION: action_failed)
    assert [row[2] for row in failed] == ["cleared"]  # raised and cleared between two looks
    await r.d.tick(at + 60_000)
    (made,) = r.items()
    assert (made.alarm_ids, made.category) == ((failed[0][0],), "馈电异常")
    assert "action_failed" in made.description
    await r.d.tick(at + 120_000)
    await r.d.tick(at + 180_000)
    assert len(r.items()) == 1  # the over-limit alarm itself is not the rule's kind


def test_the_rules_are_checked_and_the_docs_example_block_is_valid() -> None:
    text = (ROOT / "docs" / "hazards.md").read_text("utf-8")
    found = re.search(
        r"```yaml\n(hazards:\n  from_alarms:\n.*?)```", text[text.index("DOMAIN 6 rules") :], re.S
    )
    assert found is not None
    reg = hub_registry(found.group(1))
    rules = reg.config.hazards.from_alarms
    assert any(r.repeats is not None for r in rules) and any(r.after_h == 0 for r in rules)
    bad = [
        ("{rules: [chem-process.interlock-bypas], after_h: 0}", "unknown rule"),
        ("{kinds: [above], after_h: 1, repeats: {n: 3, within_h: 24}}", "one of them"),
        ("{kinds: [above]}", "one of them"),
        ("{kinds: [above], repeats: {n: 1, within_h: 24}}", "repeats.n"),
        ("{kinds: [above], repeats: {n: 3, within_h: 0}}", "within_h"),
        ("{rules: [hazard], after_h: 0}", "open no item"),
    ]
    for rule, says in bad:
        with pytest.raises(ConfigError, match=re.escape(says)):
            hub_registry(f"hazards:\n  from_alarms:\n    - {rule}\n")
    # (rules or levels without kinds: any kind; neither: fault and no_data as before)
    (plain,) = hub_registry(
        "hazards:\n  from_alarms:\n    - {after_h: 1}\n"
    ).config.hazards.from_alarms
    assert plain.alarm_kinds == ("fault", "no_data")
    assert hub_registry(BYPASS).config.hazards.from_alarms[0].alarm_kinds is None


async def test_any_kind_rules_open_nothing_from_hazard_alarms_and_keep_the_cap(
    rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = """
hazards:
  from_alarms:
    - {levels: [general_overdue, power_cut], after_h: 0}
    - {kinds: [above], repeats: {n: 2, within_h: 24}}
"""
    r: Rig = await rig(rules)
    overdue = HazardItem(
        0, "north-coal", "face-1301", "self_check", "c", "general", "d", "", (), (),
        T0, "x", "x", T0, status="graded", deadline=T0 + HOUR,
    )  # fmt: skip
    with r.db.transaction() as con:  # an item past its deadline: its hazard_overdue alarm
        made = insert_item(con, overdue, "enterprise")
    await r.d.tick(T0 + 2 * HOUR)
    await r.d.tick(T0 + 2 * HOUR + 60_000)
    ((level,),) = r.db.query("SELECT level_name FROM alarms WHERE rule = 'hazard'")
    assert level == "general_overdue"
    assert [i.id for i in r.items()] == [made.id]  # (an item's own alarm opens no item)
    # the cap holds for the new rules: none this pass, the rest the next
    monkeypatch.setattr(hazardrules, "MAX_OPENED_PER_PASS", 0)
    for k in range(2):
        at = T0 + 3 * HOUR + k * HOUR
        await r.read("ch4-t1", at, 1.6)  # power_cut: the levels rule at once
        await r.read("ch4-t1", at + 600_000, 0.1)
    await r.d.tick(T0 + 5 * HOUR)
    assert len(r.items()) == 1
    monkeypatch.setattr(hazardrules, "MAX_OPENED_PER_PASS", 50)
    await r.d.tick(T0 + 5 * HOUR + 60_000)
    opened = r.items()[1:]
    # the two over-limit alarms: each its item by the first rule (power_cut reached), so the
    # repeats rule, second, finds them taken
    assert [len(i.alarm_ids) for i in opened] == [1, 1]
    assert all("power_cut" in i.description for i in opened)
