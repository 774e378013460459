"""Errors of the wire contract. Each says whose fault it was: these are all the peer's."""

from __future__ import annotations

__all__ = ["ConfigError", "DecodeError", "TelemetryError", "TopicError"]


class TelemetryError(Exception):
    """Base of the errors raised by `telemetry`."""


class DecodeError(TelemetryError):
    """A payload could not be decoded; the message says which field is wrong and why."""


class TopicError(TelemetryError):
    """A topic does not follow the hazardhub topic layout."""


class ConfigError(TelemetryError):
    """A configuration document is invalid; the message names the file, the path and the problem."""
