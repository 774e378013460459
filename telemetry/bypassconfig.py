"""The hub's interlock bypass approvals (联锁旁路审批, DOMAIN 2.4; `alerts.bypassalarms`): how
long a bypass may run before its written approval is recorded. Pure configuration."""

from __future__ import annotations

from pydantic import Field

from telemetry.configbase import Frozen

__all__ = ["BypassSettings"]


class BypassSettings(Frozen):
    approve_within_s: float = Field(
        default=1800.0,
        ge=0,
        le=86_400,
        description="a bypass in effect this long (from its start, event time) without an "
        "approval covering now raises bypass_unapproved: the time an emergency bypass has to "
        "get its paper recorded (0: at once)",
    )
