"""A hidden-danger item's deadline alarm (point `hazard:<id>`) has no sensor kind: it went out
as `device` in notifications, so a subscription for devices' comm loss (`sensor_kinds:
[device]`) got every overdue hidden danger too (helper-202's review)."""

from __future__ import annotations

from alerts.hazardalarms import hazard_point
from alerts.notify.enqueue import sensor_kind_and_gateway

from e2e_helpers import mine_registry


def test_a_hidden_dangers_alarm_has_no_sensor_kind_and_a_devices_comm_loss_keeps_its_own() -> None:
    registry = mine_registry(1502, 1.0)
    assert sensor_kind_and_gateway(registry, "north-coal", "face-1301", "", hazard_point(7)) == (
        "",
        "",
    )
    # an alarm of a point the registry does not know (a device's comm loss): `device`, as before
    kind, _ = sensor_kind_and_gateway(registry, "north-coal", "face-1301", "kj-1", "kj-1")
    assert kind == "device"
