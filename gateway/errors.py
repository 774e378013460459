"""Errors of the gateway."""

from __future__ import annotations

__all__ = ["DeviceError", "GatewayError", "PlanError"]


class GatewayError(Exception):
    """Base of the errors raised by `gateway`."""


class PlanError(GatewayError):
    """A set of points cannot be compiled into Modbus reads (our configuration's fault)."""


class DeviceError(GatewayError):
    """A device did not answer, or answered with an exception or a malformed response."""
