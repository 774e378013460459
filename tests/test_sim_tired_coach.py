"""The shipped `coach-driven-tired` scenario through a real hub: 4 h 10 min of driving from
08:00 China Standard Time, played at 1500x, raise the continuous-driving fatigue alarm 4 h after
the coach starts moving (a file of its own: it takes some 12 seconds)."""

from __future__ import annotations

import pytest
from test_sim_vehicle_scenarios import play_through_hub


@pytest.mark.slow
async def test_coach_driven_tired_raises_fatigue_after_four_hours(mosquitto, tmp_path):
    accel, period_s = 1500.0, 0.02  # 15,300 s in 10.2 s, a fix every 30 s of scenario time
    compiled, epoch, alarms = await play_through_hub(
        "coach-driven-tired", accel, period_s, mosquitto, tmp_path
    )
    fatigue = [a for a in alarms if a["side"] == "fatigue"]
    assert [a["sensor"] for a in fatigue] == ["coach-07.speed"], alarms
    assert fatigue[0]["state"] == "active"  # its 5-minute stop at the end is not a rest
    # which coach (its plate) and what the value measures: seconds of driving, not km/h
    assert (fatigue[0]["location"], fatigue[0]["value_unit"]) == ("苏B·K5678", "s")
    assert fatigue[0]["value"] >= 4 * 3600
    t_move = compiled.first_crossing("coach-07.speed", 5.0 + 1e-9, step_s=0.05)
    assert t_move is not None
    got = (int(str(fatigue[0]["started_ts"])) - epoch) / 1000
    fix = period_s * accel  # 30 s of scenario time between fixes
    # the first fix past 4 h of driving, its fixes every `fix` from t=0 (the driving counts from
    # the first moving fix, at most one fix after t_move)
    assert t_move + 4 * 3600 <= got <= t_move + 4 * 3600 + 2 * fix, (got, t_move)
    others = [a for a in alarms if a["side"] != "fatigue"]
    assert others == [], others  # no overspeed, no drift on its closed loop, nothing parked
