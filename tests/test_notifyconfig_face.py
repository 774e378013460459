"""`telemetry.notifyconfig` is split along its seams (the channels in `telemetry.notifychannels`,
the names of alarm kinds and events in `telemetry.alarmkinds`); every name it offered is still
importable from it, the very same objects."""

from __future__ import annotations

import telemetry.alarmkinds
import telemetry.notifychannels
import telemetry.notifyconfig


def test_every_public_name_is_still_importable_from_notifyconfig() -> None:
    face = telemetry.notifyconfig
    for name in face.__all__:
        assert hasattr(face, name), name
    for part in (telemetry.alarmkinds, telemetry.notifychannels):
        for name in part.__all__:
            assert name in face.__all__, name
            assert getattr(face, name) is getattr(part, name), name
