"""A sensor's unit against its point's and its rule's (pure; used by `build_registry`).

A sensor's `unit:` names the unit of a point whose profile leaves it open (a generic input); it
converts nothing. One that contradicts the unit its profile's point declares is refused: a radar
point in mm with `unit: m` on its sensor would have a HI of 8.5 compared with millimetres. A
sensor whose unit (its own, else its point's) is not its rule's is refused too, and the error
leads with the fix that makes the numbers right: scale the point into the rule's unit.
"""

from __future__ import annotations

import unicodedata

from telemetry.config import PointSpec
from telemetry.errors import ConfigError

__all__ = ["conversion", "sensor_unit"]

# (from, to): the factor a point's scale is multiplied by to read `to` instead of `from`
_FACTORS = {
    ("mm", "m"): 0.001,
    ("cm", "m"): 0.01,
    ("m", "mm"): 1000.0,
    ("pa", "kpa"): 0.001,
    ("pa", "mpa"): 1e-6,
    ("kpa", "mpa"): 0.001,
    ("bar", "mpa"): 0.1,
    ("mbar", "kpa"): 0.1,
    ("mpa", "kpa"): 1000.0,
    ("kpa", "pa"): 1000.0,
    ("ppm", "%"): 1e-4,
    ("ppm", "%vol"): 1e-4,
    ("%", "ppm"): 1e4,
    ("%vol", "ppm"): 1e4,
}


def _key(unit: str) -> str:
    return "".join(unicodedata.normalize("NFKC", unit).split()).casefold()


def conversion(point: PointSpec, to: str) -> str:
    """How to make `point` read `to` in its profile: `scale: 0.001` with `unit: m` on the point
    when the factor between the two units is known, else the words to say it (a 4-20 mA
    point's span, for one)."""
    if point.current is not None:  # a 4-20 mA point: its span says what it reads
        return f"the `current:` span (`eng_min`, `eng_max`) in {to} and `unit: {to}` on the point"
    factor = _FACTORS.get((_key(point.unit), _key(to)))
    if factor is None:
        return f"a `scale:` that gives {to} and `unit: {to}` on the point"
    return f"`scale: {point.scale * factor:g}` with `unit: {to}` on the point"


def sensor_unit(
    *,
    sensor: str,
    unit: str,
    point: PointSpec,
    profile: str,
    rule: str | None,
    rule_units: tuple[str, ...],
    where: str,
) -> str:
    """The unit a sensor reads in (its own `unit:`, else its point's); ConfigError when its own
    contradicts its point's, or when it is not its rule's (`rule_units`, none: any)."""
    said = f"point {point.name!r} of profile {profile!r}"
    if unit and point.unit and _key(unit) != _key(point.unit):
        raise ConfigError(
            f"{where}.unit: sensor {sensor!r} says `unit: {unit}`, but its {said} reads "
            f"{point.unit!r}: a sensor's `unit:` is for a point whose profile leaves the unit "
            "open, and converts nothing (its levels would be compared with the point's "
            f"{point.unit}). To read the point in {unit}, set {conversion(point, unit)} in "
            "the profile (or use the device maker's own profile in that unit); else remove "
            "the sensor's `unit:`"
        )
    unit = unit or point.unit
    norm = _key(unit)
    if not norm or not rule_units or norm in {_key(u) for u in rule_units}:
        return unit
    wanted = rule_units[0]
    fix = (
        f"set {conversion(point, wanted)} in the profile (or use the device maker's own "
        f"profile in {wanted})"
        if point.unit
        else f"scale the point to {wanted} in the profile and set the sensor's `unit: {wanted}`"
    )
    raise ConfigError(
        f"{where}.rule: rule {rule!r} has its levels in {' or '.join(rule_units)}, and sensor "
        f"{sensor!r} reads {unit!r} ({said}): its alarms would come at the wrong value. To "
        f"read the point in the rule's unit, {fix}; else give the sensor its own levels in "
        f"{unit}, or pick a rule in {unit}"
    )
