"""Errors of the gateway."""

from __future__ import annotations

__all__ = [
    "DeviceError",
    "GatewayError",
    "LinkError",
    "NoAnswerError",
    "NotSentError",
    "PlanError",
    "RefusedError",
    "UnitSilentError",
]


class GatewayError(Exception):
    """Base of the errors raised by `gateway`."""


class PlanError(GatewayError):
    """A set of points cannot be compiled into Modbus reads (our configuration's fault)."""


class DeviceError(GatewayError):
    """A device did not answer, or answered with an exception or a malformed response. The
    subclasses say how much of the device is lost: a `LinkError` all of it, the others (and a
    malformed answer, raised as `DeviceError` itself) the one request."""


class LinkError(DeviceError):
    """The connection to the device cannot be made, was lost, or lost its framing: nothing more
    can be read over it in this cycle."""


class NoAnswerError(DeviceError):
    """The unit did not answer the request in time (or a TCP-to-RTU gateway said so: exception
    10 or 11)."""


class NotSentError(NoAnswerError):
    """The request was not sent: it is in backoff, having gone unanswered by a unit that
    answers others, or its whole unit is (`UnitSilentError`)."""


class UnitSilentError(NotSentError):
    """The unit is in backoff after going silent: the request was not sent."""


class RefusedError(DeviceError):
    """The unit answered the request with a Modbus exception (e.g. 02, illegal data address):
    it is there, the request's registers are not."""
