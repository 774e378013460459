"""Identification and grading of a hazardous-chemical major hazard source (GB 18218-2018).

Pure: built-in tables and two functions. `resolve` turns one configured inventory line into an
`Item` (its critical quantity Q and correction factor β), `assess` grades a unit from its items
and the people within 500 m. The whole site is taken as one unit, so the mixture rule sums over
every item of the site:

- identification: S = Σ q_i / Q_i; a **major hazard source if S >= 1**;
- grading: R = α · Σ β_i · q_i / Q_i; grade 1 if R >= 100, 2 if 50 <= R < 100, 3 if
  10 <= R < 50, 4 if R < 10 (only a major hazard source has a grade).

Arithmetic is exact (`fractions.Fraction` of the decimals as written), so that S = 1 and R = 10,
50, 100 fall on the side the standard puts them, whatever binary floats would round to.

Values to verify against the standard's text (docs/DOMAIN.md marks them [V-weak], [M] or garbled
in its sources):

- Critical quantities Q of Table 1 (`SUBSTANCES`, all [V-weak]): ammonia 10, chlorine 5, phosgene
  0.3, ethylene oxide 10, methane/natural gas 50, LPG 50, acetylene 1, benzene 50, toluene 500,
  methanol 500, gasoline 200, ethanol 500; **hydrogen 5 is [M]** (the source row is garbled).
- β by GHS category (Table 4, `GHS_BETA`, [V-weak]): J1 4, J2 1, J3 2, J4 2, J5 1, W1.x 2, W2 1.5,
  W3 1, W4 1, W5.1 1.5, W5.2-W5.4 1, W6.1 1.5, W6.2 1, W7.1 1.5, W7.2 1, W8-W11 1.
- The category (hence β) given here to the named substances that are not Table 3 toxic gases is
  our reading, not a table value: methane/natural gas, LPG, hydrogen, acetylene as W2 (β 1.5);
  benzene, toluene, methanol, ethanol and **gasoline** as W5.3 (β 1; gasoline would be W5.1,
  β 1.5, if it is classed flammable liquid category 1). A site can give `ghs` for the
  conditions it runs at (e.g. W5.1 above the boiling point).
- CAS numbers and English names are ours, from memory.

The toxic-gas β of Table 3, the α bands and the grade bands are [V] in DOMAIN.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "ALPHA_BANDS",
    "GHS_BETA",
    "GRADE_BANDS",
    "SUBSTANCES",
    "TOXIC_GAS_BETA",
    "Assessment",
    "GhsCategory",
    "Item",
    "Substance",
    "alpha_for",
    "assess",
    "find_substance",
    "grade_for",
    "resolve",
]

GhsCategory = Literal[
    "J1",
    "J2",
    "J3",
    "J4",
    "J5",
    "W1.1",
    "W1.2",
    "W1.3",
    "W2",
    "W3",
    "W4",
    "W5.1",
    "W5.2",
    "W5.3",
    "W5.4",
    "W6.1",
    "W6.2",
    "W7.1",
    "W7.2",
    "W8",
    "W9.1",
    "W9.2",
    "W10",
    "W11",
]

# β of the other substances by hazard category (GB 18218-2018 Table 4) [V-weak]
GHS_BETA: Mapping[str, Fraction] = {
    "J1": Fraction(4),
    "J2": Fraction(1),
    "J3": Fraction(2),
    "J4": Fraction(2),
    "J5": Fraction(1),
    "W1.1": Fraction(2),
    "W1.2": Fraction(2),
    "W1.3": Fraction(2),
    "W2": Fraction(3, 2),
    "W3": Fraction(1),
    "W4": Fraction(1),
    "W5.1": Fraction(3, 2),
    "W5.2": Fraction(1),
    "W5.3": Fraction(1),
    "W5.4": Fraction(1),
    "W6.1": Fraction(3, 2),
    "W6.2": Fraction(1),
    "W7.1": Fraction(3, 2),
    "W7.2": Fraction(1),
    "W8": Fraction(1),
    "W9.1": Fraction(1),
    "W9.2": Fraction(1),
    "W10": Fraction(1),
    "W11": Fraction(1),
}

# α by the people within 500 m of the boundary: (at least this many people, α), highest first [V]
ALPHA_BANDS: tuple[tuple[int, Fraction], ...] = (
    (100, Fraction(2)),
    (50, Fraction(3, 2)),
    (30, Fraction(6, 5)),
    (1, Fraction(1)),
    (0, Fraction(1, 2)),
)

# grade by R: (R at least this, grade), highest first [V]
GRADE_BANDS: tuple[tuple[int, int], ...] = ((100, 1), (50, 2), (10, 3), (0, 4))


@dataclass(frozen=True, slots=True)
class Substance:
    """A substance the tables name: its critical quantity (None: not in our Q table) and β with
    where β comes from (``table3`` for a toxic gas, else the GHS category we class it in)."""

    name: str  # the Chinese name of GB 18218-2018
    english: str
    cas: str
    critical_t: Fraction | None
    beta: Fraction
    beta_source: str
    aliases: tuple[str, ...] = ()

    @property
    def toxic_gas(self) -> bool:
        return self.beta_source == "table3"


def _gas(name: str, english: str, cas: str, q: str | None, beta: int, *aliases: str) -> Substance:
    return Substance(
        name, english, cas, None if q is None else Fraction(q), Fraction(beta), "table3", aliases
    )


def _other(name: str, english: str, cas: str, q: str, ghs: str, *aliases: str) -> Substance:
    return Substance(name, english, cas, Fraction(q), GHS_BETA[ghs], ghs, aliases)


SUBSTANCES: tuple[Substance, ...] = (
    # Table 3 toxic gases with a critical quantity in our table
    _gas("氨", "ammonia", "7664-41-7", "10", 2, "液氨", "氨气", "NH3"),
    _gas("氯", "chlorine", "7782-50-5", "5", 4, "氯气", "液氯", "Cl2"),
    _gas("光气", "phosgene", "75-44-5", "0.3", 20, "碳酰氯", "COCl2"),
    _gas("环氧乙烷", "ethylene oxide", "75-21-8", "10", 2, "氧化乙烯", "EO"),
    # Table 3 toxic gases whose Q we do not carry: the site gives critical_t
    _gas("一氧化碳", "carbon monoxide", "630-08-0", None, 2, "CO"),
    _gas("二氧化硫", "sulfur dioxide", "7446-09-5", None, 2, "SO2", "sulphur dioxide"),
    _gas("氯化氢", "hydrogen chloride", "7647-01-0", None, 3, "HCl"),
    _gas("溴甲烷", "methyl bromide", "74-83-9", None, 3, "bromomethane"),
    _gas("硫化氢", "hydrogen sulfide", "7783-06-4", None, 5, "H2S", "hydrogen sulphide"),
    _gas("氟化氢", "hydrogen fluoride", "7664-39-3", None, 5, "HF"),
    _gas("二氧化氮", "nitrogen dioxide", "10102-44-0", None, 10, "NO2"),
    _gas("氰化氢", "hydrogen cyanide", "74-90-8", None, 10, "HCN"),
    _gas("磷化氢", "phosphine", "7803-51-2", None, 20, "PH3"),
    _gas("异氰酸甲酯", "methyl isocyanate", "624-83-9", None, 20, "MIC"),
    # named in our Q table, β by the category we class them in (see the module docstring)
    _other("甲烷", "methane", "74-82-8", "50", "W2", "CH4"),
    _other("天然气", "natural gas", "8006-14-2", "50", "W2"),
    _other("液化石油气", "LPG", "68476-85-7", "50", "W2", "liquefied petroleum gas"),
    _other("氢", "hydrogen", "1333-74-0", "5", "W2", "氢气", "H2"),
    _other("乙炔", "acetylene", "74-86-2", "1", "W2", "电石气", "C2H2"),
    _other("苯", "benzene", "71-43-2", "50", "W5.3"),
    _other("甲苯", "toluene", "108-88-3", "500", "W5.3"),
    _other("甲醇", "methanol", "67-56-1", "500", "W5.3"),
    _other("汽油", "gasoline", "86290-81-5", "200", "W5.3", "petrol"),
    _other("乙醇", "ethanol", "64-17-5", "500", "W5.3", "酒精"),
)

# β of the toxic gases (GB 18218-2018 Table 3) [V], by Chinese name
TOXIC_GAS_BETA: Mapping[str, Fraction] = {s.name: s.beta for s in SUBSTANCES if s.toxic_gas}


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


_BY_KEY: Mapping[str, Substance] = {
    _key(k): s for s in SUBSTANCES for k in (s.name, s.english, s.cas, *s.aliases)
}


def find_substance(text: str) -> Substance | None:
    """The substance a name (Chinese or English, an alias, case-insensitive) or CAS number
    stands for; None if the tables do not name it."""
    return _BY_KEY.get(_key(text))


@dataclass(frozen=True, slots=True)
class Item:
    """One inventory line, resolved: q (t), Q (t), β and where Q and β come from."""

    substance: str  # as configured
    name: str  # the table's Chinese name, or as configured for an unlisted substance
    cas: str | None
    quantity_t: Fraction
    critical_t: Fraction
    beta: Fraction
    critical_source: Literal["table1", "config"]
    beta_source: str  # "table3", a GHS category (Table 4) or "config"
    # the configuration's critical_t where Table 1's (as the hub carries it) differs and is
    # used instead: None when none was given, or the same
    critical_t_given: Fraction | None = None

    @property
    def ratio(self) -> Fraction:
        """q / Q."""
        return self.quantity_t / self.critical_t


def _exact(x: float, what: str) -> Fraction:
    if not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, not {x}")
    return Fraction(repr(x))  # the decimal as written, not the nearest binary float


def resolve(
    substance: str,
    quantity_t: float,
    *,
    critical_t: float | None = None,
    beta: float | None = None,
    ghs: str | None = None,
) -> Item:
    """Resolve one inventory line. Raises ValueError naming the substance when it cannot.

    A substance of the tables takes Q and β from them: `critical_t` is required for a toxic gas
    whose Q we do not carry, `ghs` only for a substance that is not a Table 3 toxic gas (its
    category at the conditions of the site), `beta` never. Any other substance needs
    `critical_t` and exactly one of `beta` and `ghs`.

    `critical_t` for a substance whose Q the table carries is accepted, so that a file keeps
    loading when a later release adds the substance's Q: the table's Q (the standard's) is
    used, and a `critical_t` that differs from it is kept on the item (`critical_t_given`) for
    the hub to say so, never silently taken over the regulation's value.
    """
    q = _exact(quantity_t, f"{substance!r}: quantity_t")
    if q < 0:
        raise ValueError(f"{substance!r}: quantity_t must be >= 0, not {quantity_t}")
    if ghs is not None and ghs not in GHS_BETA:
        raise ValueError(f"{substance!r}: unknown GHS category {ghs!r}; one of {list(GHS_BETA)}")
    crit = None if critical_t is None else _exact(critical_t, f"{substance!r}: critical_t")
    if crit is not None and crit <= 0:
        raise ValueError(f"{substance!r}: critical_t must be > 0, not {critical_t}")
    b = None if beta is None else _exact(beta, f"{substance!r}: beta")
    if b is not None and b <= 0:
        raise ValueError(f"{substance!r}: beta must be > 0, not {beta}")

    known = find_substance(substance)
    if known is None:
        if crit is None:
            raise ValueError(
                f"unknown substance {substance!r}: not in the built-in GB 18218-2018 table; "
                "give its critical_t (t) and its beta or ghs category"
            )
        if ghs is not None and b is None:
            return Item(substance, substance, None, q, crit, GHS_BETA[ghs], "config", ghs)
        if b is not None and ghs is None:
            return Item(substance, substance, None, q, crit, b, "config", "config")
        raise ValueError(f"{substance!r}: give exactly one of 'beta' and 'ghs'")

    label = f"{substance!r} ({known.name}, {known.english})"
    if b is not None:
        raise ValueError(f"{label}: beta is set by the standard's tables, not configurable")
    table_q = known.critical_t
    q_of = table_q if table_q is not None else crit
    if q_of is None:
        raise ValueError(
            f"{label}: the hub's GB 18218-2018 table gives its beta ({float(known.beta):g}, "
            f"{'Table 3' if known.toxic_gas else known.beta_source}) but not its critical "
            "quantity: give critical_t, its Q (t) from GB 18218-2018 Table 1 (a file that "
            "gives it keeps loading when a later release carries the Q)"
        )
    given = crit if table_q is not None and crit is not None and crit != table_q else None
    if known.toxic_gas and ghs is not None:
        raise ValueError(f"{label}: a Table 3 toxic gas has a fixed beta; remove ghs")
    return Item(
        substance,
        known.name,
        known.cas,
        q,
        q_of,
        GHS_BETA[ghs] if ghs is not None else known.beta,
        "table1" if table_q is not None else "config",
        ghs if ghs is not None else known.beta_source,
        given,
    )


def alpha_for(people_500m: int) -> Fraction:
    """α, from the people exposed within 500 m of the boundary."""
    if people_500m < 0:
        raise ValueError(f"people_500m must be >= 0, not {people_500m}")
    return next(a for least, a in ALPHA_BANDS if people_500m >= least)


def grade_for(r: Fraction) -> int:
    """The grade (1 highest) of a major hazard source with index R."""
    return next(g for least, g in GRADE_BANDS if r >= least)


@dataclass(frozen=True, slots=True)
class Assessment:
    """A unit's identification and grade. `alpha`, `r` are None without the people count;
    `grade` is None for a unit that is not a major hazard source, or without the people count."""

    items: tuple[Item, ...]
    s: Fraction
    weighted: Fraction  # Σ β_i q_i / Q_i
    alpha: Fraction | None
    r: Fraction | None
    is_major: bool
    grade: int | None

    def differs_from(self, declared: int | None) -> bool:
        """Whether a declared grade (None: not a major hazard source) contradicts this one. With
        R unknown, only a declared grade on a unit below S = 1 (or none above it) contradicts."""
        if not self.is_major:
            return declared is not None
        if self.grade is None:
            return declared is None
        return declared != self.grade


def assess(items: Sequence[Item], people_500m: int | None) -> Assessment:
    """Identify and grade a unit holding `items` (mixture rule: S sums over all of them)."""
    s = sum((i.ratio for i in items), Fraction(0))
    weighted = sum((i.beta * i.ratio for i in items), Fraction(0))
    alpha = None if people_500m is None else alpha_for(people_500m)
    r = None if alpha is None else alpha * weighted
    is_major = s >= 1
    grade = grade_for(r) if is_major and r is not None else None
    return Assessment(tuple(items), s, weighted, alpha, r, is_major, grade)
