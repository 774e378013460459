"""A draft of a mine's configuration from its point definitions (JC): the hub's device profile,
device and sensors, and the mine-files point map (`hazardhub mine-files draft-config`).

Pure: definitions and rule packs in, YAML text out. Every proposed rule carries a comment saying
it must be checked against the mine's sensor layout; where the words are unclear there is no rule
and a comment says why; an unknown type is kind `other` with a comment asking. Each string is
written as a JSON string (a YAML double-quoted scalar), so no point code or location can change
the document's shape, and "0101" stays text.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.minefiles.proposal import propose, sensor_kind
from telemetry.config import RulePack
from telemetry.mt1201 import FileError, PointDef, parse_name

__all__ = ["DEFAULT_NO_DATA_S", "PERIODS", "Draft", "draft", "ident", "no_data_s", "upload_period"]

DEFAULT_NO_DATA_S = 120.0  # when the mine's upload period is not known
PERIODS = 50  # the latest real-time files looked at for the upload period
_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Draft:
    hub: str  # YAML for the hub's configuration (-c)
    mines: str  # YAML for the mine-files configuration (--mines)
    points: int
    rules: int  # points with a proposed rule
    unknown: int  # points of a type not recognised


def ident(text: str, used: set[str], limit: int = 64) -> str:
    """A hub id (1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit) from `text`, not
    in `used` (then added to it): other characters become ``_``, a clash gets ``-2``, ``-3``..."""
    base = _BAD.sub("_", text)
    if not base or not base[0].isalnum() or not base[0].isascii():
        base = "p" + base
    base = base[:limit]
    found, n = base, 1
    while found in used:
        n += 1
        suffix = f"-{n}"
        found = base[: limit - len(suffix)] + suffix
    used.add(found)
    return found


def upload_period(names: Iterable[str], mine: str) -> tuple[float, int] | None:
    """(the median gap in s between the real-time (SS) files of `mine` named in `names`, the
    files it is of), from the latest `PERIODS`; None with fewer than 3."""
    stamps = []
    for name in names:
        try:
            parsed = parse_name(name)
        except FileError:
            continue
        if parsed.mine_code == mine and parsed.kind == "SS":
            stamps.append(parsed.stamp_ms)
    latest = sorted(set(stamps))[-PERIODS:]
    gaps = [(b - a) / 1000.0 for a, b in itertools.pairwise(latest)]
    if len(gaps) < 2:
        return None
    return float(statistics.median(gaps)), len(latest)


def no_data_s(period_s: float | None) -> float:
    """Three upload periods, at least a minute (at most a day); the default when unknown."""
    if period_s is None:
        return DEFAULT_NO_DATA_S
    return float(min(86400, max(60, math.ceil(3 * period_s))))


def _flat(text: str) -> str:
    """One line of printable text (a comment, a label): control characters become spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _first_above(packs: Mapping[str, RulePack], rule: str) -> float | None:
    pack_name, _, rule_name = rule.partition(".")
    spec = packs[pack_name].rules[rule_name]
    uppers = [lv.above for lv in spec.levels if lv.above is not None]
    return min(uppers) if uppers else None


def draft(
    mine: str,
    points: Sequence[PointDef],
    packs: Mapping[str, RulePack],
    *,
    tenant: str,
    site: str,
    gateway: str,
    source: str,
    period: tuple[float, int] | None,  # (s, files it was seen in; 0: given)
    device: str = "kj",
) -> Draft:
    """The draft of `mine`'s configuration from its definitions `points` (from `source`)."""
    if not points:
        raise ValueError(f"mine {mine}: {source} defines no point")
    latest: dict[str, PointDef] = {}
    for p in points:  # a point defined twice: its last definition
        latest[p.point] = p
    names: set[str] = set()
    ids: set[str] = set()
    profile = f"mine-{mine}"
    wait_s = no_data_s(period[0] if period else None)
    if period is None:
        wait = (
            f"no_data_s {wait_s:g}: the mine's upload period is not known (fewer than 3 of its "
            "real-time files in done/): set it above the period"
        )
    elif period[1] == 0:
        wait = f"no_data_s {wait_s:g}: 3 x the upload period of {period[0]:g} s given, at least 60"
    else:
        wait = (
            f"no_data_s {wait_s:g}: 3 x the upload period of {period[0]:g} s seen in its "
            f"latest {period[1]} real-time files, at least 60"
        )
    prof_lines: list[str] = []
    sensor_lines: list[str] = []
    map_lines: list[str] = []
    rules = unknown = 0
    for i, p in enumerate(latest.values()):
        name = ident(p.point, names)
        sensor = ident(f"{mine}-{name}", ids)
        unit = _flat(p.unit)
        prof_lines.append(f"      - {{name: {_q(name)}, address: {i}, unit: {_q(unit)}}}")
        location = _flat(p.location)[:200]
        type_name = _flat(p.type_name)
        guess = sensor_kind(type_name)
        prop = propose(guess.kind, type_name, location, unit, packs)
        span = f"{_num(p.range_low)}-{_num(p.range_high)} {unit}".strip()
        sensor_lines.append(
            f"              # {_flat(p.point)} {type_name} @ {location or '-'}: range {span}, the "
            f"mine alarms above {_num(p.alarm_high)}"
        )
        if not guess.known:
            unknown += 1
            sensor_lines.append(
                f"              # ASK: {guess.note} kind other until you set it (methane co "
                "oxygen toxic_gas flammable_gas wind_speed temperature pressure level "
                "power_feed interlock other)"
            )
        elif guess.note:
            sensor_lines.append(f"              # {guess.note}")
        fields = [
            f"id: {_q(sensor)}",
            f"point: {_q(name)}",
            f"kind: {guess.kind}",
        ]
        if location:
            fields.append(f"location: {_q(location)}")
        if prop.tag:
            fields.append(f"tag: {prop.tag}")
        if prop.rule is not None:
            rules += 1
            hub_at = _first_above(packs, prop.rule)
            sensor_lines.append(
                f"              # PROPOSED rule {prop.rule}, from {prop.why}: CHECK it "
                "against the mine's sensor layout before use"
            )
            if (
                hub_at is not None
                and p.alarm_high is not None
                and abs(p.alarm_high - hub_at) > 1e-9
            ):
                sensor_lines.append(
                    f"              # the mine alarms at {p.alarm_high:g}, this rule at "
                    f"{hub_at:g}: another place, or a setting to correct (check-points)"
                )
            fields.append(f"rule: {prop.rule}")
        else:
            sensor_lines.append(f"              # no rule: {prop.why}")
        fields.append(f"no_data_s: {wait_s:g}")
        sensor_lines.append(f"              - {{{', '.join(fields)}}}")
        map_lines.append(f"      {_q(p.point)}: {_q(sensor)}")
    head = (
        f"# hazardhub mine-files draft-config: mine {mine}, {len(latest)} points of {source}\n"
        "# A DRAFT. Before use, check each PROPOSED rule against the mine's sensor layout\n"
        "# (where each sensor hangs: T0-T4 of a face, a heading, a return), each kind, and\n"
        f"# each point without a rule. {wait}.\n"
    )
    hub = (
        head + "# The hub's configuration (-c): add the profile to device_profiles: and the "
        f"device to\n# site {site}'s devices:\n"
        "version: 1\n"
        "device_profiles:\n"
        f"  - name: {profile}\n"
        "    # the mine's point codes: the addresses are required by the format, unused\n"
        "    points:\n" + "\n".join(prof_lines) + "\n"
        "tenants:\n"
        f"  - id: {_q(tenant)}\n"
        "    sites:\n"
        f"      - id: {_q(site)}\n"
        "        kind: mine\n"
        "        devices:\n"
        f"          - id: {_q(device)}\n"
        f"            profile: {profile}\n"
        f"            gateway: {_q(gateway)}\n"
        "            sensors:\n" + "\n".join(sensor_lines) + "\n"
    )
    mines = (
        f"# The mine-files configuration (--mines): mine {mine}'s entry of mines:\n"
        "mines:\n"
        f"  {_q(mine)}:\n"
        f"    tenant: {_q(tenant)}\n"
        f"    site: {_q(site)}\n"
        "    points:\n" + "\n".join(map_lines) + "\n"
    )
    return Draft(hub, mines, len(latest), rules, unknown)
