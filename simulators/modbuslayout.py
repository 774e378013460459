"""The register layout of a simulated Modbus unit (`simulators.modbus`): its points grouped by
table, each register's word before its bits, overlaps refused; and the pymodbus block of each
table."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pymodbus.simulator import DataType, SimData

from simulators.encode import register_width
from telemetry.config import PointSpec

__all__ = [
    "BIT_TABLES",
    "TABLES",
    "TABLE_OF_FUNCTION",
    "WORDS",
    "Span",
    "Table",
    "layout",
    "shares",
    "sim_block",
]

Table = Literal["coil", "discrete", "holding", "input"]

TABLES: Final[tuple[Table, ...]] = ("coil", "discrete", "holding", "input")
BIT_TABLES: Final = frozenset({"coil", "discrete"})
WORDS: Final = frozenset({"int16", "uint16"})  # one-register words that bit points may share
TABLE_OF_FUNCTION: Final[Mapping[int, Table]] = {
    **dict.fromkeys((1, 5, 15), "coil"),
    2: "discrete",
    **dict.fromkeys((3, 6, 16, 22, 23), "holding"),
    4: "input",
}


@dataclass(frozen=True, slots=True)
class Span:
    """The points of one table and the address range [lo, hi) they cover (gaps read as 0)."""

    points: tuple[PointSpec, ...]
    lo: int
    hi: int


def shares(a: PointSpec, b: PointSpec) -> bool:
    """Whether `b` may read a register `a` reads too: distinct bits of one register, or a bit of
    a one-register integer word (a state word and its flags: `a` the word, as `layout` sorts)."""
    if a.address != b.address or b.dtype != "bit":
        return False
    return a.bit != b.bit if a.dtype == "bit" else a.dtype in WORDS


def layout(points: Sequence[PointSpec]) -> dict[Table, Span]:
    """Group points by table, each register's word before its bits; overlapping points would
    make the device ambiguous, so refuse them (bits of one register, and of a word, excepted)."""
    spans: dict[Table, Span] = {}
    for table in TABLES:
        mine = sorted(
            (p for p in points if p.table == table), key=lambda p: (p.address, p.dtype == "bit")
        )
        for a, b in itertools.pairwise(mine):
            if shares(a, b):
                continue  # several flags in one status register, or a word's bits
            if a.address + register_width(a.dtype) > b.address:
                raise ValueError(f"points {a.name!r} and {b.name!r} overlap in the {table} table")
        if mine:
            hi = max(p.address + register_width(p.dtype) for p in mine)
            spans[table] = Span(tuple(mine), mine[0].address, hi)
    return spans


def sim_block(table: Table, span: Span | None) -> list[SimData]:
    """The pymodbus block for one table; an empty table still needs an entry."""
    if table in BIT_TABLES:
        # Bit blocks have no "invalid" marker; an empty one is refused in the action instead.
        lo, hi = (span.lo, span.hi) if span else (0, 1)
        return [SimData(address=lo, values=[False] * (hi - lo), datatype=DataType.BITS)]
    if span is None:
        return [SimData(address=0, count=1, datatype=DataType.INVALID)]
    return [SimData(address=span.lo, count=span.hi - span.lo, datatype=DataType.REGISTERS)]
