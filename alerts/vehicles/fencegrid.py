"""A grid over the geofences, compiled once, to find each fence's candidate positions of a batch
without sorting the batch or scanning it once per fence.

Each cell lists the fences whose boxes (a polygon's bounding box, a corridor's box per segment)
meet it. A position's cell is found with the same arithmetic as the cells of a box, which is
monotone, so a position inside a box is always in one of the box's cells: the grid only narrows
the search, the box and the shape decide as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # the table holds a grid
    from alerts.vehicles.table import Zone

__all__ = ["FenceGrid", "FenceIndex"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
_CELL_DEG = 0.02  # about 2 km; coarser until there are at most `_MAX_CELLS`
_MAX_CELLS = 1 << 20


@dataclass(frozen=True, slots=True, eq=False)
class FenceGrid:
    """Cells of `cell` degrees from (`lat0`, `lon0`); the fences of cell c (row-major) are
    `fence[start[c] : start[c + 1]]`, numbered by their place in `zones`."""

    zones: tuple[Zone, ...]
    lat0: float
    lon0: float
    cell: float
    rows: int
    cols: int
    start: I64
    fence: I64
    busy: npt.NDArray[np.bool_]  # by cell, and False for one cell more (outside the grid)

    @classmethod
    def build(cls, zones: Sequence[Zone]) -> FenceGrid:
        boxes = [(f, box) for f, z in enumerate(zones) for box in z.shape.boxes]
        finite = [b for _, b in boxes if all(math.isfinite(x) for x in b)]
        lat0 = min((b[0] for b in finite), default=0.0)
        lon0 = min((b[2] for b in finite), default=0.0)
        height = max((b[1] for b in finite), default=0.0) - lat0
        width = max((b[3] for b in finite), default=0.0) - lon0
        cell = _CELL_DEG
        while (int(height / cell) + 1) * (int(width / cell) + 1) > _MAX_CELLS:
            cell *= 2.0
        rows, cols = int(height / cell) + 1, int(width / cell) + 1
        cells: list[I64] = []
        owners: list[I64] = []
        for f, (lat_min, lat_max, lon_min, lon_max) in boxes:
            r0 = max(0, math.floor((lat_min - lat0) / cell))
            r1 = min(rows - 1, math.floor((lat_max - lat0) / cell))
            c0 = max(0, math.floor((lon_min - lon0) / cell))
            c1 = min(cols - 1, math.floor((lon_max - lon0) / cell))
            if r0 <= r1 and c0 <= c1:
                r, c = np.meshgrid(np.arange(r0, r1 + 1), np.arange(c0, c1 + 1), indexing="ij")
                cells.append((r * cols + c).ravel().astype(np.int64))
                owners.append(np.full(cells[-1].shape, f, dtype=np.int64))
        pairs = np.unique(
            np.stack((np.concatenate(cells), np.concatenate(owners)), axis=1)
            if cells
            else np.zeros((0, 2), dtype=np.int64),
            axis=0,
        )
        count = np.bincount(pairs[:, 0], minlength=rows * cols + 1)
        start = np.zeros(rows * cols + 2, dtype=np.int64)
        np.cumsum(count, out=start[1:])
        return cls(
            zones=tuple(zones),
            lat0=lat0,
            lon0=lon0,
            cell=cell,
            rows=rows,
            cols=cols,
            start=start,
            fence=pairs[:, 1].copy(),
            busy=count > 0,
        )


class FenceIndex:
    """The candidates of every fence of a grid among a batch's positions, found at once: the
    positions in a cell with fences, paired with those fences, grouped by fence."""

    def __init__(self, grid: FenceGrid, lat: F64, lon: F64) -> None:
        self.lat, self.lon = lat, lon
        self.number = {zone: f for f, zone in enumerate(grid.zones)}
        with np.errstate(invalid="ignore"):  # NaN or far away: outside the grid
            u = (lat - grid.lat0) / grid.cell
            w = (lon - grid.lon0) / grid.cell
            inside = (u >= 0.0) & (u < grid.rows) & (w >= 0.0) & (w < grid.cols)
            key = u.astype(np.int32)
            key *= np.int32(grid.cols)
            key += w.astype(np.int32)
        outside = grid.rows * grid.cols
        key = np.where(inside, key, np.int32(outside))
        rows = np.flatnonzero(grid.busy[key])
        cell = key[rows].astype(np.int64)
        lo, hi = grid.start[cell], grid.start[cell + 1]
        size = hi - lo
        at = np.arange(int(size.sum()), dtype=np.int64)
        at += np.repeat(lo - (np.cumsum(size) - size), size)
        fence = grid.fence[at]
        order = np.argsort(
            fence.astype(np.int16) if len(grid.zones) < (1 << 15) else fence, kind="stable"
        )
        self.rows = np.repeat(rows, size)[order]  # by fence, ascending within each
        self.bounds = np.searchsorted(fence[order], np.arange(len(grid.zones) + 1))

    def candidates(self, zone: Zone) -> I64:
        """The rows inside the zone's bounding box (sorted)."""
        f = self.number[zone]
        rows = self.rows[self.bounds[f] : self.bounds[f + 1]]
        lat_min, lat_max, lon_min, lon_max = zone.shape.bbox
        la, lo = self.lat[rows], self.lon[rows]
        out: I64 = rows[(la >= lat_min) & (la <= lat_max) & (lo >= lon_min) & (lo <= lon_max)]
        return out
