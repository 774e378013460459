"""The chaos run of issue 10: its accounting (pure, fast) and its short form end to end (slow:
mosquitto, influxd, the simulator, two gateways and two hubs as processes, ~100 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.account import account_alarms, account_readings, catch_up_ms
from chaos.collect import AlarmEvent, Published

ROOT = Path(__file__).resolve().parent.parent
SENSORS = {("d", "p"): "s", ("d", "q"): "s2"}


def _batches() -> dict[tuple[str, int, int], Published]:
    return {
        ("d", 1, 0): Published([("p", 100), ("q", 100), ("faults", 100)]),
        ("d", 1, 1): Published([("p", 200), ("q", 200)], deliveries=2),
        ("d", 2, 0): Published([("p", 300), ("q", 300)]),
    }


def test_every_published_reading_stored_once_is_clean():
    rows = [("s", 100, 1, 0), ("s2", 100, 1, 0), ("s", 200, 1, 1), ("s2", 200, 1, 1)]
    rows += [("s", 300, 2, 0), ("s2", 300, 2, 0)]
    acc = account_readings(_batches(), SENSORS, rows)
    assert (acc.sent, acc.stored, acc.lost, acc.duplicated, acc.unexpected) == (6, 6, 0, 0, 0)
    assert (acc.epochs, acc.batch_redeliveries, acc.seq_gaps) == (2, 1, 0)


def test_missing_restamped_and_gapped_readings_are_counted():
    batches = _batches()
    batches[("d", 2, 2)] = Published([("p", 500)])  # seq 1 of epoch 2 never published
    rows = [("s", 100, 1, 0), ("s2", 100, 1, 0), ("s", 200, 1, 1)]  # s2 at 200 lost
    rows += [("s", 300, 2, 0), ("s", 301, 2, 0), ("s2", 300, 2, 0), ("s", 500, 2, 2)]
    acc = account_readings(batches, SENSORS, rows)
    assert acc.seq_gaps == 1
    assert acc.lost == 2  # the missing row and the gap
    assert acc.duplicated == 1  # (s, epoch 2, seq 0) stored at two times
    assert acc.unexpected == 1  # s at 301 was never published
    assert any("s2 at 200" in x for x in acc.lost_sample)


def _ev(kind: str, level: str, ts: int, sensor: str = "t1") -> AlarmEvent:
    return AlarmEvent(sensor, "coal-methane.face-t1", "above", kind, level, ts, ts)


def test_alarms_match_within_tolerance_and_differences_are_named():
    want = [_ev("raised", "alarm", 1000), _ev("escalated", "power_cut", 6000)]
    assert account_alarms(want, [_ev("raised", "alarm", 1200), want[1]], 350).ok
    late = account_alarms(want, [_ev("raised", "alarm", 2000), want[1]], 350)
    assert not late.ok and "expected 1000" in late.differences[0]
    extra = account_alarms(want, [*want, _ev("raised", "alarm", 9000, "t0")], 350)
    assert not extra.ok and "extra raised" in extra.differences[0]
    wrong = account_alarms(want, [want[0], _ev("escalated", "alarm", 6000)], 350)
    assert not wrong.ok and wrong.matched == 1


def test_catch_up_is_the_first_sample_with_every_reading():
    assert catch_up_ms([(1100, 5), (1600, 9), (2100, 10)], 10, 1000) == 1100
    assert catch_up_ms([(1100, 5)], 10, 1000) is None


@pytest.mark.slow
def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--short", "--report", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(report_path.read_text())
    readings, alarms = report["readings"], report["alarms"]
    assert readings["sent"] > 1000
    assert readings["lost"] == 0
    assert readings["duplicated"] == 0
    assert readings["unexpected"] == 0
    assert alarms["ok"] and alarms["expected"] >= 4
    assert all(f["catch_up_s"] is not None for f in report["faults"])
