"""Errors of the fleet analytics."""

from __future__ import annotations

from alerts.errors import AlertsError

__all__ = ["FleetConfigError"]


class FleetConfigError(AlertsError):
    """The fleet settings do not fit the vehicles they are compiled against (our config's fault)."""
