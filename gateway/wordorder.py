"""What a gateway says of float readings that decoded to a subnormal number (sensor faults,
most likely a profile's wrong word order): each counted in ``subnormal_readings``, each point's
first logged with what the other word orders read from the same registers."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from gateway.decode import word_order_hint
from gateway.modbus.connection import Value
from gateway.plan import ReadRequest
from telemetry.config import PointSpec

__all__ = ["SubnormalReport"]

log = logging.getLogger(__name__)


class SubnormalReport:
    """One device's: counts in the gateway's `counters`, logs a point once per process (the
    count goes on; a point whose value moves may decode subnormal on and off every cycle)."""

    def __init__(self, device: str, points: tuple[PointSpec, ...], counters: Counter[str]):
        self._device = device
        self._points = points
        self._counters = counters
        self._said: set[int] = set()  # points (by index in `points`) logged

    def report(
        self, req: ReadRequest, answer: Value, found: tuple[int, ...], value: np.ndarray
    ) -> None:
        """`found`: the points of `req` (by index) that decoded subnormal from `answer`."""
        self._counters["subnormal_readings"] += len(found)
        for i in found:
            if i in self._said:
                continue
            self._said.add(i)
            point = self._points[i]
            offset = dict(req.points)[i]
            words = answer[2 * offset :] if isinstance(answer, bytes) else answer[offset:]
            log.warning(
                "device %s: point %s (%s %d, %s %s) read %g, a subnormal number that no "
                "transmitter sends: a sensor fault; is the word order wrong? %s (said once per "
                "point; counted in subnormal_readings)",
                self._device,
                point.name,
                req.table,
                req.address + offset,
                point.dtype,
                point.word_order,
                value[i],
                word_order_hint(point, words),
            )
