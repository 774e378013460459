"""The demo scenario: what every point of `examples/demo.yaml` does over time.

Within the first minute the face methane (T1) passes 1.0 % (alarm) at about 22 s and 1.5 %
(power-cut level) at about 32 s, the face's power feed drops at 33 s, methane falls back below
1.0 % at about 50 s and power returns at 56 s. From 20 s to 50 s the hazmat tanker drives at
90 km/h on an expressway (limit 80), on purpose: from 15 s to 55 s it ignores the limits of its
route. Otherwise it keeps to them, 80 km/h on the G2 and 50 km/h through a town section.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulators.route import Drive, Route
from simulators.signals import Constant, Noisy, Piecewise, Signal

__all__ = ["DEMO_ROUTES", "demo_point_signals", "demo_vehicle_speeds", "methane_profile"]


def methane_profile(
    base: float = 0.30, rise_s: float = 10.0, peak: float = 1.70, scale_s: float = 1.0
) -> Piecewise:
    """Face methane: flat, then through 1.0 % and 1.5 % to a peak, then back down below 1.0 %.

    `scale_s` compresses the timeline (0.2 plays the minute in 12 s) for tests.
    """
    pts = (
        (0.0, base),
        (rise_s, base),
        (rise_s + 25.0, peak),
        (rise_s + 32.0, peak),
        (rise_s + 44.0, 0.60),
    )
    return Piecewise(tuple((t * scale_s, v) for t, v in pts))


def demo_point_signals() -> Mapping[str, Mapping[str, Signal]]:
    """Signals per device id and point name."""
    t1 = methane_profile()
    return {
        "tank1-rtu": {
            "level": Noisy(Constant(6.20), 0.01, seed=1),
            "pressure": Noisy(Constant(0.82), 0.005, seed=2),
            "temperature": Noisy(Constant(21.5), 0.1, seed=3),
        },
        "tank2-rtu": {
            "level": Noisy(Constant(4.75), 0.01, seed=4),
            "pressure": Noisy(Constant(0.76), 0.005, seed=5),
            "temperature": Noisy(Constant(22.0), 0.1, seed=6),
        },
        "gas-panel": {f"lel{i}": Noisy(Constant(1.5), 1.0, seed=10 + i) for i in range(1, 5)},
        "sis-1": {"bypassed": Constant(0), "tripped": Constant(0)},  # armed
        "kj-sub-3": {
            "ch4_t0": Noisy(Constant(0.35), 0.02, seed=20),
            "ch4_t1": t1,
            "ch4_t2": Piecewise(((0.0, 0.25), (15.0, 0.25), (40.0, 0.85), (60.0, 0.40))),
            "co": Noisy(Constant(6.0), 1.0, seed=21),
            "feed": Piecewise(((0.0, 1.0), (33.0, 1.0), (33.01, 0.0), (56.0, 0.0), (56.01, 1.0))),
        },
    }


def demo_vehicle_speeds() -> Mapping[str, Signal]:
    return {
        "tanker-01": Drive(
            Piecewise(((0.0, 72.0), (15.0, 72.0), (20.0, 90.0), (50.0, 90.0), (55.0, 75.0))),
            free=((15.0, 55.0),),  # the overspeed is deliberate: limits ignored
        ),
        "coach-07": Noisy(Constant(92.0), 3.0, seed=30),
        "charter-03": Noisy(Constant(84.0), 3.0, seed=31),
    }


# Expressway polylines (lat, lon): G2 Beijing-Shanghai near Wuxi, G42 near Nanjing, S38 near Suzhou.
# The tanker drives its approved corridor; 0.9 km of its second leg is a town section, 50 km/h.
DEMO_ROUTES: Mapping[str, Route] = {
    "tanker-01": Route(
        (
            (31.5860, 120.2500),
            (31.6200, 120.3300),
            (31.6350, 120.3840),  # town section, on the same line as the G2 leg
            (31.6375, 120.3930),
            (31.6450, 120.4200),
        ),
        limits_kmh=(80.0, 80.0, 50.0, 80.0),
    ),
    "coach-07": Route(((32.0500, 118.8900), (32.1000, 119.0500), (32.1600, 119.2500))),
    "charter-03": Route(((31.3000, 120.5800), (31.3300, 120.6800), (31.3500, 120.7900))),
}
