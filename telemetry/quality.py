"""Quality codes carried by every reading (uint8 on the wire)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["KNOWN_QUALITIES", "MEASURED", "Quality"]


class Quality(IntEnum):
    """How far a reading can be trusted.

    Only GOOD readings are judged against process thresholds; the others say why not.
    """

    GOOD = 0
    SENSOR_FAULT = 1  # the transmitter reports a fault (e.g. NAMUR NE 43 < 3.6 mA)
    OUT_OF_RANGE = 2  # outside the measuring range of the sensor
    COMM_LOSS = 3  # the device did not answer; the value is NaN
    STALE = 4  # no fresh value within the expected interval
    MANUAL = 5  # entered or forced by a person
    CALIBRATION = 6  # sensor under calibration or maintenance: never alarms


KNOWN_QUALITIES = frozenset(int(q) for q in Quality)
# the qualities whose (finite) value is a measurement: judged against the levels, a feedback's
# confirmation, the history's aggregates
MEASURED = (int(Quality.GOOD), int(Quality.OUT_OF_RANGE))
