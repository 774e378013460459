"""The tiers' order (blue < yellow < orange < red, none below them) has one source: the tiers a
level may be given (`telemetry.configbase.Tier`), from which the core's numbering and every
"highest tier" are derived."""

from __future__ import annotations

from typing import get_args

from alerts.alarmfeed import peak_of
from alerts.kinds import TIER_RANK, TIERS
from telemetry.configbase import Tier


def test_the_core_numbers_the_configured_tiers_after_none() -> None:
    assert TIERS == ("none", *get_args(Tier)) == ("none", "blue", "yellow", "orange", "red")
    assert [TIER_RANK[t] for t in TIERS] == list(range(len(TIERS)))


def test_an_alarms_peak_tier_is_its_highest() -> None:
    assert peak_of("yellow,red,orange") == "red"
    assert peak_of("") == "none"
    # a journal whose first tier is none (a clear's): blue ranks above it (the stream's peak
    # ranked none and blue alike and told the first, "none")
    assert peak_of("none,blue") == "blue"
    assert peak_of("none") == "none"
