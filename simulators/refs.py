"""How a scenario names a device of a configuration with several tenants.

Device ids are unique within a site only: two enterprises of one city centre may both have a
`tank1-rtu`. A scenario names a device as `device` (no other tenant or site has that id),
`tenant/device` (the tenant has it at one site) or `tenant/site/device`. A name that fits
several devices is refused with them listed, never applied to them all. Inside the simulators a
device is keyed by its full name (`device_ref`), which ids (no `/` in them) keep unambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping

from telemetry.registry import DeviceInfo

__all__ = ["UnknownDeviceError", "device_ref", "resolve_device"]

_FORMS = "'device', 'tenant/device' or 'tenant/site/device'"


class UnknownDeviceError(ValueError):
    """No device of the configuration has the name."""


def device_ref(info: DeviceInfo) -> str:
    """The device's full name, `tenant/site/device`: the key of its signals, modes and unit."""
    return f"{info.tenant}/{info.site}/{info.spec.id}"


def resolve_device(name: str, devices: Mapping[str, DeviceInfo]) -> str:
    """The full name of the one device `name` names, from `devices` (by full name); raises
    UnknownDeviceError when it names none, ValueError when several (listed) or it is malformed."""
    if name in devices:
        return name
    parts = name.split("/")
    if len(parts) == 1:
        fits = [ref for ref, d in devices.items() if d.spec.id == name]
        finer = "'tenant/device' or 'tenant/site/device'"
    elif len(parts) == 2:
        tenant, dev = parts
        fits = [ref for ref, d in devices.items() if (d.tenant, d.spec.id) == (tenant, dev)]
        finer = "'tenant/site/device'"
    elif len(parts) == 3:
        fits = []
        finer = ""
    else:
        raise ValueError(f"{name!r}: a scenario names a device as {_FORMS}")
    if not fits:
        raise UnknownDeviceError(f"no device {name!r} in the configuration (named as {_FORMS})")
    if len(fits) > 1:
        listed = ", ".join(sorted(fits))
        raise ValueError(
            f"device {name!r} is ambiguous: {len(fits)} devices have that name ({listed}); "
            f"name one as {finer}"
        )
    return fits[0]
