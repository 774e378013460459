"""Geometry on a local flat projection, identical arithmetic in the array and the scalar form.

Each shape is projected once at compile time about its own first vertex (equirectangular, metres);
a point is projected with the same constants, so the vectorized core and the per-position
reference make the same float operations in the same order and agree bit for bit. Good to a few
metres over the extent of a city or a route of a few hundred km, which is what geofences are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EARTH_R", "Shape", "ShapeSet", "compile_shape", "step_m", "step_m_one"]

EARTH_R = 6_371_008.8
_DEG = math.pi / 180.0
F64 = npt.NDArray[np.float64]
_MARGIN_DEG = 1e-6
_FEW = 384  # points below which a segment-by-segment pruning costs more than it saves


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """A compiled polygon (even-odd rule) or corridor (distance to the polyline <= buffer)."""

    lat0: float
    lon0: float
    kx: float  # metres per degree of longitude at lat0
    ky: float
    polygon: bool
    x1: F64  # edge / segment starts
    y1: F64
    dx: F64
    dy: F64
    aux: F64  # polygon: dx/dy of the edge (0 when horizontal); corridor: 1/|segment|^2
    buffer2: float
    bbox: tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max
    boxes: tuple[tuple[float, float, float, float], ...]  # the bbox; a corridor's per segment
    edges: tuple[tuple[float, float, float, float, float], ...]  # the same, as Python floats

    def contains(
        self, lat: F64, lon: F64, distance: bool = True
    ) -> tuple[npt.NDArray[np.bool_], F64]:
        """(inside, squared distance to the polyline; 0 for polygons) of each point. Without
        `distance`, a corridor only measures points near each segment (then the distance of a
        point far from every segment is inf, its `inside` the same): the points in the union of
        the segments' boxes, then the pairs of a point and a segment whose box holds it."""
        x = (lon - self.lon0) * self.kx
        y = (lat - self.lat0) * self.ky
        if self.polygon:
            inside = np.zeros(x.shape, dtype=np.bool_)
            for lo in range(0, x.shape[0], self.block):
                xb, yb = x[lo : lo + self.block, None], y[lo : lo + self.block, None]
                crosses = (self.y1 > yb) != ((self.y1 + self.dy) > yb)
                hits = crosses & (xb < self.aux * (yb - self.y1) + self.x1)
                crossings = hits.view(np.uint8) @ np.ones(hits.shape[1], dtype=np.uint8)
                inside[lo : lo + self.block] = crossings & 1  # mod 256: the parity stays
            return inside, np.zeros(x.shape, dtype=np.float64)
        best = np.full(x.shape, np.inf)
        if distance or x.shape[0] < _FEW:  # few points: all segments at once is cheaper
            for lo in range(0, x.shape[0], self.block):
                xb, yb = x[lo : lo + self.block, None], y[lo : lo + self.block, None]
                best[lo : lo + self.block] = self._d2(
                    xb, yb, self.x1, self.y1, self.dx, self.dy, self.aux
                ).min(axis=1)
            return best <= self.buffer2, best
        reach = math.sqrt(self.buffer2) + 1.0
        x0s = np.minimum(self.x1, self.x1 + self.dx) - reach
        y0s = np.minimum(self.y1, self.y1 + self.dy) - reach
        xes = np.maximum(self.x1, self.x1 + self.dx) + reach
        yes = np.maximum(self.y1, self.y1 + self.dy) + reach
        # the union of the segments' boxes first: a point outside it is near none of them
        some = np.flatnonzero(
            (x >= x0s.min()) & (x <= xes.max()) & (y >= y0s.min()) & (y <= yes.max())
        )
        for lo in range(0, some.shape[0], self.block):  # then (point, near segment) pairs
            at = some[lo : lo + self.block]
            xb, yb = x[at], y[at]
            near = (xb[:, None] >= x0s) & (xb[:, None] <= xes)
            near &= (yb[:, None] >= y0s) & (yb[:, None] <= yes)
            p, q = np.nonzero(near)  # by point
            if p.size:
                d2 = self._d2(
                    xb[p], yb[p], self.x1[q], self.y1[q], self.dx[q], self.dy[q], self.aux[q]
                )
                heads = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
                best[at[p[heads]]] = np.minimum.reduceat(d2, heads)
        return best <= self.buffer2, best

    @staticmethod
    def _d2(x: Any, y: Any, x1: Any, y1: Any, dx: Any, dy: Any, inv: Any) -> F64:
        """Squared distance to segments, the arithmetic of `contains_one` element by element."""
        t = np.minimum(np.maximum(((x - x1) * dx + (y - y1) * dy) * inv, 0.0), 1.0)
        ex = x - (x1 + t * dx)
        ey = y - (y1 + t * dy)
        out: F64 = ex * ex + ey * ey
        return out

    @property
    def block(self) -> int:
        return max(1, (1 << 18) // max(1, int(self.x1.shape[0])))

    def contains_one(self, lat: float, lon: float) -> tuple[bool, float]:
        """The scalar twin of `contains` (the reference's)."""
        x = (lon - self.lon0) * self.kx
        y = (lat - self.lat0) * self.ky
        if self.polygon:
            inside = False
            for x1, y1, _dx, dy, slope in self.edges:
                y2 = y1 + dy
                if ((y1 > y) != (y2 > y)) and x < slope * (y - y1) + x1:
                    inside = not inside
            return inside, 0.0
        best = math.inf
        for x1, y1, dx, dy, inv in self.edges:
            t = min(max(((x - x1) * dx + (y - y1) * dy) * inv, 0.0), 1.0)
            ex = x - (x1 + t * dx)
            ey = y - (y1 + t * dy)
            best = min(best, ex * ex + ey * ey)
        return best <= self.buffer2, best

    def in_bbox_one(self, lat: float, lon: float) -> bool:
        lat_min, lat_max, lon_min, lon_max = self.bbox
        return lat_min <= lat <= lat_max and lon_min <= lon <= lon_max


@dataclass(frozen=True, slots=True, eq=False)
class ShapeSet:
    """Corridors' segments concatenated (shape j's are `start[j] : start[j + 1]`), to measure
    points against different corridors at once instead of a call per corridor."""

    lat0: F64  # by shape
    lon0: F64
    kx: F64
    ky: F64
    start: npt.NDArray[np.int64]
    x1: F64  # by segment
    y1: F64
    dx: F64
    dy: F64
    aux: F64

    @classmethod
    def build(cls, shapes: Sequence[Shape]) -> ShapeSet:
        def by_shape(name: str) -> F64:
            return np.array([getattr(s, name) for s in shapes], dtype=np.float64)

        def by_edge(name: str) -> F64:
            return np.concatenate([getattr(s, name) for s in shapes] or [np.zeros(0)])

        start = np.zeros(len(shapes) + 1, dtype=np.int64)
        np.cumsum([s.x1.shape[0] for s in shapes], out=start[1:])
        return cls(
            by_shape("lat0"), by_shape("lon0"), by_shape("kx"), by_shape("ky"), start,
            by_edge("x1"), by_edge("y1"), by_edge("dx"), by_edge("dy"), by_edge("aux"),
        )  # fmt: skip

    def distance2(self, which: npt.NDArray[np.integer[Any]], lat: F64, lon: F64) -> F64:
        """The squared distance of each point to the polyline of its corridor `which[i]` (inf
        without a segment): the arithmetic of `Shape.contains`, element by element."""
        x = (lon - self.lon0[which]) * self.kx[which]
        y = (lat - self.lat0[which]) * self.ky[which]
        lo = self.start[which]
        size = self.start[which + 1] - lo
        heads = np.cumsum(size) - size
        edge = np.arange(int(size.sum()), dtype=np.int64)
        edge += np.repeat(lo - heads, size)
        point = np.repeat(np.arange(x.shape[0]), size)
        d2 = Shape._d2(
            x[point], y[point], self.x1[edge], self.y1[edge], self.dx[edge], self.dy[edge],
            self.aux[edge],
        )  # fmt: skip
        best = np.full(x.shape, np.inf)
        some = size > 0
        if d2.size:
            best[some] = np.minimum.reduceat(d2, heads[some])
        return best


def compile_shape(
    polygon: tuple[tuple[float, float], ...] | None,
    polyline: tuple[tuple[float, float], ...] | None,
    buffer_m: float | None,
) -> Shape:
    pts = polygon if polygon is not None else polyline
    assert pts is not None
    lat0, lon0 = pts[0]
    ky = EARTH_R * _DEG
    kx = ky * math.cos(lat0 * _DEG)
    xs = [(lon - lon0) * kx for _, lon in pts]
    ys = [(lat - lat0) * ky for lat, _ in pts]
    if polygon is not None:
        pairs = [(i, (i + 1) % len(xs)) for i in range(len(xs))]
    else:
        pairs = [(i, i + 1) for i in range(len(xs) - 1)]
    edges = []
    for i, j in pairs:
        dx, dy = xs[j] - xs[i], ys[j] - ys[i]
        if polygon is not None:
            aux = dx / dy if dy != 0 else 0.0
        elif dx == 0 and dy == 0:
            continue  # a repeated point: no segment
        else:
            aux = 1.0 / (dx * dx + dy * dy)
        edges.append((xs[i], ys[i], dx, dy, aux))
    arr = np.array(edges, dtype=np.float64).reshape(-1, 5)
    pad = buffer_m or 0.0

    def box(ys: list[float], xs: list[float]) -> tuple[float, float, float, float]:
        return (
            (min(ys) - pad) / ky + lat0 - _MARGIN_DEG,
            (max(ys) + pad) / ky + lat0 + _MARGIN_DEG,
            (min(xs) - pad) / kx + lon0 - _MARGIN_DEG,
            (max(xs) + pad) / kx + lon0 + _MARGIN_DEG,
        )

    bbox = box(ys, xs)
    boxes = (
        (bbox,)
        if polygon is not None or not edges
        else tuple(box([y, y + dy], [x, x + dx]) for x, y, dx, dy, _ in edges)
    )
    return Shape(
        lat0=lat0,
        lon0=lon0,
        kx=kx,
        ky=ky,
        polygon=polygon is not None,
        x1=arr[:, 0].copy(),
        y1=arr[:, 1].copy(),
        dx=arr[:, 2].copy(),
        dy=arr[:, 3].copy(),
        aux=arr[:, 4].copy(),
        buffer2=pad * pad,
        bbox=bbox,
        boxes=boxes,
        edges=tuple(tuple(float(v) for v in row) for row in arr.tolist()),  # type: ignore[misc]
    )


def step_m(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Distance between consecutive fixes (equirectangular about their mean latitude), metres."""
    k = EARTH_R * _DEG
    dx = (lon2 - lon1) * np.cos((lat1 + lat2) * (0.5 * _DEG)) * k
    dy = (lat2 - lat1) * k
    out: F64 = np.sqrt(dx * dx + dy * dy)
    return out


def step_m_one(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    k = EARTH_R * _DEG
    dx = (lon2 - lon1) * math.cos((lat1 + lat2) * (0.5 * _DEG)) * k
    dy = (lat2 - lat1) * k
    return math.sqrt(dx * dx + dy * dy)
