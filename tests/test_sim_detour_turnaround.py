"""A detour stays on its side of the road where an open route turns round. Offsets were to the
right of travel, so a vehicle detouring when its route ended (driven back from its end) jumped
to the other side: 2 x 2.35 km in one 30 s fix, and the hub rightly raised a spurious `drift`.
They are now to the right of the route as drawn (first point to last), both ways."""

from __future__ import annotations

import itertools
import math

from simulators.route import segment_m
from simulators.signals import Constant
from simulators.vehicle import SimulatedVehicle, driven_back

ROUTE = ((31.0, 120.0), (31.0, 120.01))  # drawn east, about 953 m; driven back from its end


def test_a_detour_keeps_its_side_across_the_turnaround() -> None:
    v = SimulatedVehicle("t", "tanker-01", ROUTE, Constant(36.0), noise_m=0.0)  # 10 m/s
    v.offset_m = Constant(500.0)  # to the right of the route as drawn: south of it
    fixes = [v.record(float(t), 0) for t in range(200)]  # turns round at about 95 s
    points = [(float(f["lat"]), float(f["lon"])) for f in fixes]  # type: ignore[arg-type]
    assert driven_back(ROUTE, 1200.0) and not driven_back(ROUTE, 500.0)
    assert {round(float(f["heading_deg"])) for f in fixes} == {90, 270}  # type: ignore[arg-type]
    worst = max(segment_m(a, b) for a, b in itertools.pairwise(points))
    assert worst < 11.0, worst  # 10 m a second along the road, never across it
    south = 500.0 / 111_320.0
    assert all(math.isclose(lat, 31.0 - south, abs_tol=2e-6) for lat, _ in points), points[:3]


def test_a_closed_route_is_never_driven_back() -> None:
    loop = ((31.0, 120.0), (31.0, 120.01), (31.01, 120.01), (31.0, 120.0))
    assert not any(driven_back(loop, d) for d in (0.0, 1000.0, 5000.0, 9000.0))
