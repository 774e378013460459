"""Compile a device's points into the fewest Modbus read requests (pure).

Points of one table are sorted by address and merged into one request while the request stays
within the protocol limit (125 registers, 2000 bits) and the hole between two points is at most
`gap` registers (reading a few unused registers is cheaper than another round trip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import PlanError
from telemetry.config import PointSpec, register_width

__all__ = ["MAX_BITS", "MAX_REGISTERS", "ReadRequest", "compile_plan", "point_width"]

MAX_REGISTERS = 125
MAX_BITS = 2000
_TABLE_ORDER = {"coil": 0, "discrete": 1, "holding": 2, "input": 3}


def point_width(point: PointSpec) -> int:
    """Registers (or bits) a point occupies."""
    return register_width(point.dtype)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: str
    address: int
    count: int
    points: tuple[tuple[int, int], ...]  # (index into the point list, offset in the response)


def compile_plan(
    points: Sequence[PointSpec],
    *,
    gap: int = 8,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
    coalesce: bool = True,
) -> tuple[ReadRequest, ...]:
    """`coalesce=False` gives one request per point (only for comparisons in benchmarks)."""
    if gap < 0:
        raise PlanError("gap must be >= 0")
    if not coalesce:
        return tuple(
            ReadRequest(p.table, p.address, point_width(p), ((i, 0),)) for i, p in enumerate(points)
        )
    order = sorted(
        range(len(points)), key=lambda i: (_TABLE_ORDER[points[i].table], points[i].address)
    )
    requests: list[ReadRequest] = []
    cur_table = ""
    cur_start = cur_end = 0
    cur_points: list[tuple[int, int]] = []

    def close() -> None:
        if cur_points:
            requests.append(
                ReadRequest(
                    cur_table,
                    cur_start,
                    cur_end - cur_start,
                    tuple((i, a - cur_start) for i, a in cur_points),
                )
            )

    for i in order:
        p = points[i]
        width = point_width(p)
        limit = max_bits if p.table in ("coil", "discrete") else max_registers
        if width > limit:
            raise PlanError(f"point {p.name!r} is wider than one request")
        fits = (
            cur_points
            and p.table == cur_table
            and p.address - cur_end <= gap
            and max(cur_end, p.address + width) - cur_start <= limit
        )
        if fits:
            cur_points.append((i, p.address))
            cur_end = max(cur_end, p.address + width)
        else:
            close()
            cur_table, cur_start, cur_end = p.table, p.address, p.address + width
            cur_points = [(i, p.address)]
    close()
    return tuple(requests)
