"""What a scenario makes a vehicle's terminal do beyond driving, to test a platform's handling
(pure): JT/T 808 alarm bits in its reports (the scenario's `alarm` events), the ADAS and DSM
alarms of a 苏标 terminal (its `safety` events), a clock off by
some seconds (`clock_skew_s`), position messages sent twice on purpose (`duplicates`: a
JT/T 808 frame again with the same serial, an MQTT envelope again with the same seq), and JT/T
808 sub-packages (`package_body`), a share lost on purpose (`lose_packages`) and sent again on
the platform's ask (0x8003) with their serials or new ones (`resend_packages`)."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from simulators.scenario_spec import ScenarioSpec, alarm_bit
from telemetry.activesafety import SAFETY_KINDS

__all__ = ["SafetyStep", "TerminalQuirks", "terminal_quirks"]

_KIND = {name: key for key, name in SAFETY_KINDS.items()}
# an active-safety alarm's step: scenario time, source, type, level, flag, alarm id
SafetyStep = tuple[float, str, int, int, int, int]

_SKEW_MAX_S = 10 * 366 * 86400  # a clock ten years off is a clock reset; more is a typo


@dataclass(frozen=True, slots=True)
class TerminalQuirks:
    """One vehicle's: `alarms`, (scenario time, the alarm word from then on) in time order;
    `clock_skew_ms`, how far its clock is ahead (negative: behind); `duplicates`, the share of
    its position messages sent twice; `package_body`, `lose_packages` and `new_serials`, its
    JT/T 808 terminal's sub-packages (`simulators.jt808packets.Packages`)."""

    alarms: tuple[tuple[float, int], ...] = ()
    clock_skew_ms: int = 0
    duplicates: float = 0.0
    package_body: int = 1023
    lose_packages: float = 0.0
    new_serials: bool = False
    safety: tuple[SafetyStep, ...] = ()  # in time order

    def safety_between(self, after: float | None, t_s: float) -> tuple[SafetyStep, ...]:
        """The active-safety steps in (after, t_s]: those the position of `t_s` carries (all
        up to it for the first position, `after` None)."""
        return tuple(s for s in self.safety if (after is None or s[0] > after) and s[0] <= t_s)

    def alarm_at(self, t_s: float) -> int:
        """The alarm word at scenario time `t_s` (0: no bit set)."""
        word = 0
        for at, value in self.alarms:
            if at > t_s:
                break
            word = value
        return word


def _alarm_steps(spec: ScenarioSpec, vehicle: str) -> tuple[tuple[float, int], ...]:
    """The vehicle's alarm word as steps: each event's bit set over [at_s, at_s + for_s)."""
    spans = [
        (e.at_s, e.at_s + e.for_s if e.for_s is not None else math.inf, 1 << alarm_bit(e.alarm))
        for e in spec.events
        if e.vehicle == vehicle and e.alarm is not None
    ]
    edges = sorted({t for start, end, _ in spans for t in (start, end) if math.isfinite(t)})
    steps: list[tuple[float, int]] = []
    for t in edges:
        word = 0
        for start, end, bit in spans:
            if start <= t < end:
                word |= bit
        if not steps or steps[-1][1] != word:
            steps.append((t, word))
    return tuple(steps)


def _safety_steps(spec: ScenarioSpec, vehicle: str) -> tuple[SafetyStep, ...]:
    """The vehicle's active-safety alarms as steps, numbered from 1 in the scenario's order: an
    alarm with `for_s` starts (flag 1) and ends (flag 2) under one alarm id, one without is an
    event without duration (flag 0)."""
    steps: list[SafetyStep] = []
    mine = [e for e in spec.events if e.vehicle == vehicle and e.safety is not None]
    for n, e in enumerate(mine, start=1):
        source, type_ = _KIND[str(e.safety)]
        if e.for_s is None:
            steps.append((e.at_s, source, type_, e.level, 0, n))
        else:
            steps.append((e.at_s, source, type_, e.level, 1, n))
            steps.append((e.at_s + e.for_s, source, type_, e.level, 2, n))
    return tuple(sorted(steps))


def terminal_quirks(spec: ScenarioSpec, vehicles: Collection[str]) -> dict[str, TerminalQuirks]:
    """The quirks of each vehicle (by id) that has any; a vehicle named that the configuration
    does not have, or a skew that is not a number of seconds within ten years, is refused."""
    for key, names in (
        ("clock_skew_s", spec.clock_skew_s),
        ("duplicates", spec.duplicates),
        ("lose_packages", spec.lose_packages),
    ):
        for veh_id in names if isinstance(names, dict) else ():
            if veh_id not in vehicles:
                raise ValueError(f"scenario {spec.name!r}: {key}: no vehicle {veh_id!r}")
    for veh_id, skew in spec.clock_skew_s.items():
        if not abs(skew) <= _SKEW_MAX_S:  # (NaN too)
            raise ValueError(
                f"scenario {spec.name!r}: clock_skew_s.{veh_id}: {skew} s is not a clock's error"
            )
    out: dict[str, TerminalQuirks] = {}
    for veh_id in vehicles:
        quirks = TerminalQuirks(
            _alarm_steps(spec, veh_id),
            round(spec.clock_skew_s.get(veh_id, 0.0) * 1000),
            spec.duplicate_share(veh_id),
            spec.package_body,
            spec.loss_share(veh_id),
            spec.resend_packages == "new",
            _safety_steps(spec, veh_id),
        )
        if quirks != TerminalQuirks():
            out[veh_id] = quirks
    return out
