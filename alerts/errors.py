"""Errors of the alert core and the alarm store."""

from __future__ import annotations

__all__ = ["AlarmStoreError", "AlertsError"]


class AlertsError(Exception):
    """Base of the errors raised by `alerts`."""


class AlarmStoreError(AlertsError):
    """The relational state store failed."""
