"""The hub's alarm -> hidden-danger rules (DOMAIN 6, configurable, not regulation): an alarm of
the named kinds (rules, levels) active longer than `after_h` hours (0: at once), or raised
`repeats.n` times at one point within `repeats.within_h` hours, opens a `reported`
hidden-danger item linked to it (`alerts.hazardrules`). Pure configuration."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from telemetry.alarmkinds import AlarmKind
from telemetry.configbase import Frozen, Ident

__all__ = ["BUILTIN_RULES", "DEFAULT_KINDS", "HazardFromAlarm", "HazardRepeats", "HazardSettings"]

DEFAULT_KINDS: tuple[AlarmKind, ...] = ("fault", "no_data")
# the rules of the alarms the hub raises of its own (not a rule pack's): a device's comm loss, a
# gateway offline, the fleet analytics, a vehicle terminal's bits, its ADAS/DSM events, a
# voting group's
BUILTIN_RULES = ("comm_loss", "gateway", "fleet", "terminal", "active_safety", "vote")


class HazardRepeats(Frozen):
    """The same point's (sensor and rule) alarms raised `n` times within `within_h` hours (their
    event times): one item linking the n alarms, once per run of repeats (a run ends when
    `within_h` hours pass without one more)."""

    n: int = Field(ge=2, le=100, description="alarms raised at the point")
    within_h: float = Field(gt=0, le=8760, description="hours, from the first to the n-th start")


class HazardFromAlarm(Frozen):
    """An alarm of `kinds` (of `rules`, having reached one of `levels`; of `tenants`, none:
    every tenant) active longer than `after_h` hours (from the event time it started; 0: at
    once, active or cleared), or the point's alarms of them raised `repeats.n` times within
    `repeats.within_h` hours, opens a hidden-danger item, source monitoring_alarm, with the
    alarm's tenant, site, sensor and location."""

    kinds: tuple[AlarmKind, ...] | None = Field(
        default=None,
        min_length=1,
        description="the alarm kinds (fault: a sensor in fault; no_data: comm loss, 断线; "
        "action_failed: 馈电异常); left out: fault and no_data, or any kind with rules or levels",
    )
    rules: tuple[Ident, ...] = Field(
        default=(), max_length=100, description="alarm rule names (chem-process.interlock-bypass)"
    )
    levels: tuple[Ident, ...] = Field(
        default=(), max_length=100, description="level names the alarm reached (bypassed_too_long)"
    )
    after_h: float | None = Field(
        default=None, ge=0, le=8760, description="hours the alarm has been active (0: at once)"
    )
    repeats: HazardRepeats | None = Field(default=None, description="instead of after_h")
    tenants: tuple[Ident, ...] = Field(default=(), description="none: every tenant")
    category: str = Field(default="monitoring", min_length=1, max_length=200)
    grade: Literal["general", "major"] = Field(
        default="general", description="the item's grade as reported (the centre grades it)"
    )

    @field_validator("kinds")
    @classmethod
    def _not_hazards(cls, kinds: tuple[str, ...] | None) -> tuple[str, ...] | None:
        own = [k for k in kinds or () if k.startswith("hazard_")]
        if own:
            raise ValueError(
                f"{', '.join(own)}: a hidden-danger item's own deadline alarms open no item "
                "(they would open items from items)"
            )
        return kinds

    @field_validator("rules")
    @classmethod
    def _not_hazard_rule(cls, rules: tuple[str, ...]) -> tuple[str, ...]:
        if "hazard" in rules:
            raise ValueError(
                "hazard: a hidden-danger item's own deadline alarms open no item "
                "(they would open items from items)"
            )
        return rules

    @model_validator(mode="after")
    def _when(self) -> Self:
        if (self.after_h is None) == (self.repeats is None):
            raise ValueError(
                "after_h: give after_h (hours active, 0: at once) or repeats ({n, within_h}), "
                "one of them"
            )
        return self

    @property
    def alarm_kinds(self) -> tuple[str, ...] | None:
        """The kinds matched: `kinds`, else fault and no_data, or any (None) when the rule
        names rules or levels."""
        if self.kinds is not None:
            return self.kinds
        return None if (self.rules or self.levels) else DEFAULT_KINDS


class HazardSettings(Frozen):
    from_alarms: tuple[HazardFromAlarm, ...] = Field(
        default=(), max_length=20, description="alarm -> hidden-danger rules (none by default)"
    )
