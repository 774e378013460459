"""The hub's alarm -> hidden-danger rules (DOMAIN 6, configurable, not regulation): an alarm of
the named kinds active longer than `after_h` hours opens a `reported` hidden-danger item linked
to it, once per alarm (`alerts.hazardrules`). Pure configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from telemetry.alarmkinds import AlarmKind
from telemetry.configbase import Frozen, Ident

__all__ = ["HazardFromAlarm", "HazardSettings"]


class HazardFromAlarm(Frozen):
    """An alarm of `kinds` (of `tenants`, none: every tenant) active longer than `after_h`
    hours (from the event time it started) opens a hidden-danger item, source
    monitoring_alarm, with the alarm's tenant, site, sensor and location."""

    kinds: tuple[AlarmKind, ...] = Field(
        default=("fault", "no_data"),
        min_length=1,
        description="the alarm kinds (fault: a sensor in fault; no_data: comm loss, 断线)",
    )
    after_h: float = Field(gt=0, le=8760, description="hours the alarm has been active")
    tenants: tuple[Ident, ...] = Field(default=(), description="none: every tenant")
    category: str = Field(default="monitoring", min_length=1, max_length=200)
    grade: Literal["general", "major"] = Field(
        default="general", description="the item's grade as reported (the centre grades it)"
    )

    @field_validator("kinds")
    @classmethod
    def _not_hazards(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        own = [k for k in kinds if k.startswith("hazard_")]
        if own:
            raise ValueError(
                f"{', '.join(own)}: a hidden-danger item's own deadline alarms open no item "
                "(they would open items from items)"
            )
        return kinds


class HazardSettings(Frozen):
    from_alarms: tuple[HazardFromAlarm, ...] = Field(
        default=(), max_length=20, description="alarm -> hidden-danger rules (none by default)"
    )
