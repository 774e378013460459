"""A grid over the geofences, compiled once, to find each fence's candidate positions of a batch
without sorting the batch or scanning it once per fence.

Each cell lists the fences that may hold a point of it: a polygon in the cells of its bounding
box; a corridor in the cells of each segment's box that lie near the segment (with metres to
spare). A position's cell is found with the same arithmetic as the cells of a box, which is
monotone, so a position inside a fence is always in one of the fence's cells: the grid only
narrows the search, the bounding box and the shape decide as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from alerts.vehicles.geo import Shape

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
    busy: npt.NDArray[np.bool_]  # by cell + 1: whether it has fences (0: outside the grid)
    bboxes: F64  # by fence: lat_min, lat_max, lon_min, lon_max

    @classmethod
    def build(cls, zones: Sequence[Zone]) -> FenceGrid:
        boxes = [(f, k, box) for f, z in enumerate(zones) for k, box in enumerate(z.shape.boxes)]
        finite = [b for _, _, b in boxes if all(math.isfinite(x) for x in b)]
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
        for f, k, (lat_min, lat_max, lon_min, lon_max) in boxes:
            r0 = max(0, math.floor((lat_min - lat0) / cell))
            r1 = min(rows - 1, math.floor((lat_max - lat0) / cell))
            c0 = max(0, math.floor((lon_min - lon0) / cell))
            c1 = min(cols - 1, math.floor((lon_max - lon0) / cell))
            if r0 <= r1 and c0 <= c1:
                r = np.repeat(np.arange(r0, r1 + 1, dtype=np.int64), c1 - c0 + 1)
                c = np.tile(np.arange(c0, c1 + 1, dtype=np.int64), r1 - r0 + 1)
                shape = zones[f].shape
                if not shape.polygon:  # a corridor's segment: the cells along it, not its box
                    centre = (r.astype(np.float64) + 0.5) * cell + lat0
                    near = _near_segment(
                        shape, k, centre, (c.astype(np.float64) + 0.5) * cell + lon0, cell
                    )
                    r, c = r[near], c[near]
                cells.append(r * cols + c)
                owners.append(np.full(cells[-1].shape, f, dtype=np.int64))
        pairs = np.unique(
            np.stack((np.concatenate(cells), np.concatenate(owners)), axis=1)
            if cells
            else np.zeros((0, 2), dtype=np.int64),
            axis=0,
        )
        count = np.bincount(pairs[:, 0], minlength=rows * cols)
        start = np.zeros(rows * cols + 1, dtype=np.int64)
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
            busy=np.concatenate(([False], count > 0)),
            bboxes=np.array([z.shape.bbox for z in zones], dtype=np.float64).reshape(-1, 4),
        )


def _near_segment(shape: Shape, k: int, lat: F64, lon: F64, cell: float) -> npt.NDArray[np.bool_]:
    """Whether cells (centres given) may hold a point within the buffer of a corridor's segment
    k: the centre within the buffer plus half the cell's diagonal, plus metres to spare (far more
    than any rounding of the cell of a point or of its distance)."""
    x = (lon - shape.lon0) * shape.kx
    y = (lat - shape.lat0) * shape.ky
    x1, y1, dx, dy, inv = shape.x1[k], shape.y1[k], shape.dx[k], shape.dy[k], shape.aux[k]
    t = np.clip(((x - x1) * dx + (y - y1) * dy) * inv, 0.0, 1.0)
    reach = math.sqrt(shape.buffer2) + math.hypot(cell * shape.kx, cell * shape.ky) / 2.0 + 10.0
    near: npt.NDArray[np.bool_] = np.hypot(x - (x1 + t * dx), y - (y1 + t * dy)) <= reach
    return near


class FenceIndex:
    """The candidates of every fence of a grid among a batch's positions, found at once: the
    positions in a cell with fences, paired with those fences, grouped by fence."""

    def __init__(self, grid: FenceGrid, lat: F64, lon: F64) -> None:
        self.lat, self.lon = lat, lon
        self.number = {zone: f for f, zone in enumerate(grid.zones)}
        # a position's row and column, truncated: the floor of the boxes' cells where they are
        # (a little below the grid truncates into its first row: one more candidate, no less)
        with np.errstate(invalid="ignore"):  # not a coordinate: any number, or out of bounds
            at_cell = np.subtract(lat, grid.lat0)
            at_cell /= grid.cell
            row = at_cell.astype(np.int32)
            np.subtract(lon, grid.lon0, out=at_cell)
            at_cell /= grid.cell
            col = at_cell.astype(np.int32)
        known = row.view(np.uint32) < grid.rows
        known &= col.view(np.uint32) < grid.cols
        row *= np.int32(grid.cols)
        row += col
        row += 1
        row *= known  # cell + 1, or 0 outside the grid
        rows = np.flatnonzero(grid.busy[row])
        cell = row[rows].astype(np.int64) - 1
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

    def near(self, zone: Zone) -> I64:
        """The rows in the zone's cells (sorted): every row inside the zone, and some more."""
        f = self.number[zone]
        out: I64 = self.rows[self.bounds[f] : self.bounds[f + 1]]
        return out

    def candidates(self, zone: Zone) -> I64:
        """The rows inside the zone's bounding box (sorted)."""
        rows = self.near(zone)
        lat_min, lat_max, lon_min, lon_max = zone.shape.bbox
        la, lo = self.lat[rows], self.lon[rows]
        out: I64 = rows[(la >= lat_min) & (la <= lat_max) & (lo >= lon_min) & (lo <= lon_max)]
        return out
