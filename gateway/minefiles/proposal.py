"""What a mine's point is to the hub, read from its definition (JC): the sensor kind from the
type name, and a PROPOSED rule of the coal packs from the location's words.

Pure. A proposal is a draft for the integrator (`hazardhub mine-files draft-config`), never
applied on its own: the words of a location say where a sensor hangs only as far as the mine's
clerk wrote them, and a rule row depends on the sensor's place in the mine's layout (T1 of a
coal face or of a heading, an outburst mine's face). Where the words are not clear no rule is
proposed, and `why` says so. The rows are coal-methane's and coal-gas's (DOMAIN.md 1.1-1.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from telemetry.config import RulePack, SensorKind
from telemetry.registrychecks import same_unit

__all__ = ["KindGuess", "Proposal", "propose", "sensor_kind"]


@dataclass(frozen=True, slots=True)
class KindGuess:
    kind: SensorKind
    known: bool  # False: the type name was not recognised (kind "other" until someone says)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Proposal:
    rule: str | None  # "pack.rule", or None: no rule proposed
    tag: str  # T0-T8 when the location or the row says one
    why: str  # the words that proposed it, or why none was


# type name words -> kind, the first match wins (CO2 before CO, NO2 and SO2 before O2); ASCII
# words are matched without regard to case
_KINDS: tuple[tuple[tuple[str, ...], SensorKind, str], ...] = (
    (("二氧化碳", "CO2"), "other", "CO2: the hub has no CO2 kind; coal-gas's CO2 rules take other"),
    (
        ("硫化氢", "H2S", "二氧化硫", "SO2", "二氧化氮", "氮氧化物", "NO2", "氨气", "NH3"),
        "toxic_gas",
        "",
    ),
    (("一氧化碳", "CO"), "co", ""),
    (("甲烷", "瓦斯", "CH4"), "methane", ""),
    (("氧气", "O2"), "oxygen", ""),
    (("风速",), "wind_speed", ""),
    (("温度",), "temperature", ""),
    (("负压", "压力", "压差", "风压"), "pressure", ""),
    (("水位", "液位"), "level", ""),
    (
        ("馈电",),
        "power_feed",
        "a feed point: give it as the verify: feedback of the sensors that cut this power "
        "(docs/rules.md)",
    ),
    (
        ("开停", "风门", "风筒", "烟雾", "断电器", "开关", "状态"),
        "other",
        "a switch point (0/1: what each means is the mine's); shown, no rule",
    ),
    (("粉尘", "流量", "风量", "湿度", "电压", "电流"), "other", "no rule of the coal packs"),
)
_ASCII = re.compile(r"^[A-Za-z0-9]+$")

# a methane sensor's location words -> a coal-methane row (rule, tag, what to check); the first
# match wins. Each entry: words that must all be there, the rule (None: none proposed), the tag.
# A rule is proposed only where the words name one row of DOMAIN.md 1.1; where two rows could
# apply (a face's roadway: its intake at 0.5 % or its return at 1.0 %), none is, saying which
_ROADWAY = "say which: write 进风 or 回风 in the location, or set the rule by hand"
_METHANE: tuple[tuple[tuple[str, ...], str | None, str, str], ...] = (
    (("管道",), None, "", "a drainage pipeline's methane is no airway row: give it levels"),
    (("抽采管",), None, "", "a drainage pipeline's methane is no airway row: give it levels"),
    (("上隅角",), "upper-corner-t0", "T0", ""),
    (("采煤机",), "shearer", "", ""),
    (("掘进机",), "heading-machine", "", ""),
    (("连采机",), "heading-machine", "", ""),
    (("锚杆钻车",), "heading-machine", "", ""),
    (("架线",), "haulage-intake", "", "high-gas mines' trolley haulage"),
    (("机车",), "locomotive", "", ""),
    (("煤仓",), "coal-bunker", "", ""),
    # only a methane drainage station's fence is a row (乳化液泵站, 排水泵站 are pumps: their
    # place's row, if any, below)
    (("抽采", "泵站"), "drainage-station", "", "a temporary underground drainage station's fence"),
    (("抽放", "泵站"), "drainage-station", "", "a temporary underground drainage station's fence"),
    (("瓦斯", "泵站"), "drainage-station", "", "a temporary underground drainage station's fence"),
    (("总回风",), "main-return", "", ""),
    (("翼回风",), "main-return", "", ""),
    (("主要回风",), "main-return", "", ""),
    (("回风立井",), "main-return", "", "the mine's return shaft"),
    (("回风斜井",), "main-return", "", "the mine's return shaft"),
    (("回风井",), "main-return", "", "the mine's return shaft"),
    (("采区回风",), "district-return", "", ""),
    (
        ("回风", "大巷"),
        None,
        "",
        "a main return roadway: a district's (district-return, 1.0 %) or a wing's or the "
        "mine's (main-return, 0.75 %): say which",
    ),
    (
        ("回风", "石门"),
        None,
        "",
        "a return cross-cut: a district's (district-return, 1.0 %) or a wing's or the mine's "
        "(main-return, 0.75 %): say which",
    ),
    (("掘进", "回风"), "heading-return-t2", "T2", ""),
    (("掘进", "被串"), "heading-series-t3", "T3", ""),
    (("掘进",), "heading-t1", "T1", "within 5 m of the heading face"),
    (("回风", "中部"), "return-middle", "", "a high-gas face's return longer than 1000 m"),
    (("进风", "被串"), "intake-series-t4", "T4", ""),
    (
        ("回风",),
        "return-t2",
        "T2",
        "a coal face's return airway; a district's or wing's return is another row",
    ),
    (("进风",), "intake-t3", "T3", "T3 is for high-gas and outburst mines' faces"),
    (("泵站",), None, "", f"a pump station, not a methane drainage station's: {_ROADWAY}"),
    (
        ("大巷",),
        None,
        "",
        "a main roadway is no face row: the haulage row (haulage-intake) only where trolley "
        "locomotives run in a high-gas mine's intake",
    ),
    (
        ("工作面", "顺槽"),
        None,
        "",
        f"a face's roadway: its intake (T3) or its return (T2): {_ROADWAY}",
    ),
    (
        ("工作面", "巷"),
        None,
        "",
        f"a face's roadway: its intake (T3) or its return (T2): {_ROADWAY}",
    ),
    (
        ("工作面", "运输"),
        None,
        "",
        f"a face's roadway: its intake (T3) or its return (T2): {_ROADWAY}",
    ),
    (
        ("工作面", "轨道"),
        None,
        "",
        f"a face's roadway: its intake (T3) or its return (T2): {_ROADWAY}",
    ),
    (
        ("工作面",),
        "face-t1",
        "T1",
        "a coal face; an outburst mine's is face-t1-outburst (a wider power cut), a "
        "heading's heading-t1",
    ),
)
_TOXIC: tuple[tuple[tuple[str, ...], str], ...] = (
    (("硫化氢", "H2S"), "coal-gas.h2s"),
    (("二氧化硫", "SO2"), "coal-gas.so2"),
    (("二氧化氮", "氮氧化物", "NO2"), "coal-gas.no2"),
    (("氨气", "NH3"), "coal-gas.nh3"),
)
_CO2: tuple[tuple[str, str], ...] = (
    ("进风", "coal-gas.co2-intake"),
    ("总回风", "coal-gas.co2-main-return"),
    ("翼回风", "coal-gas.co2-main-return"),
    ("回风", "coal-gas.co2-district-return"),
)
_TAG = re.compile(r"(?<![A-Za-z0-9])[Tt]([0-8])(?![0-9])")
_NO_RULE: dict[str, str] = {
    "wind_speed": "no coal wind-speed rule in the packs: give levels from the mine's "
    "ventilation design if wanted",
    "temperature": "no coal temperature rule in the packs: give levels if wanted",
    "pressure": "no coal pressure rule in the packs: give levels if wanted",
    "level": "no coal level rule in the packs: give levels if wanted",
    "power_feed": "a feed point raises nothing by itself",
}


def _has(text: str, word: str) -> bool:
    if _ASCII.match(word):
        return word.upper() in text.upper()
    return word in text


def sensor_kind(type_name: str) -> KindGuess:
    """The hub's sensor kind for a JC type name (甲烷 -> methane ...); an unknown name is
    `other`, not known (the draft asks)."""
    name = type_name.strip()
    for words, kind, note in _KINDS:
        if any(_has(name, w) for w in words):
            return KindGuess(kind, True, note)
    return KindGuess("other", False, f"type {name!r} is not known: what does this point measure?")


def _by_words(kind: SensorKind, type_name: str, location: str) -> Proposal:
    if kind == "methane":
        for words, rule, tag, check in _METHANE:
            if all(w in location for w in words):
                said = "+".join(words)
                if rule is None:
                    return Proposal(None, "", f"{said} in the location: {check}")
                why = f"{said} in the location" + (f" ({check})" if check else "")
                return Proposal(f"coal-methane.{rule}", tag, why)
        return Proposal(None, "", "no row of coal-methane recognised in the location")
    if kind == "co":
        return Proposal("coal-gas.co", "", "the type (CO: 24 ppm wherever it is measured)")
    if kind == "oxygen":
        if "进风" in location:
            return Proposal("coal-gas.oxygen-intake", "", "进风 in the location")
        return Proposal(None, "", "the O2 rule is for a working face's intake (进风)")
    if kind == "toxic_gas":
        for words, rule in _TOXIC:
            if any(_has(type_name, w) for w in words):
                return Proposal(rule, "", f"the type {type_name} (wherever it is measured)")
        return Proposal(None, "", f"no coal-gas rule for {type_name!r}")
    if kind == "other" and any(_has(type_name, w) for w in ("二氧化碳", "CO2")):
        for word, rule in _CO2:
            if word in location:
                return Proposal(rule, "", f"CO2, {word} in the location")
        return Proposal(None, "", "the CO2 rules are for intakes and returns (进风, 回风)")
    return Proposal(None, "", _NO_RULE.get(kind, "no rule of the coal packs for it"))


def propose(
    kind: SensorKind, type_name: str, location: str, unit: str, packs: Mapping[str, RulePack]
) -> Proposal:
    """A rule for a point of `kind` at `location`, checked against the rule packs (it exists,
    is for the kind and in the point's unit); a tag written in the location (T0-T8) is kept,
    and one the words disagree with drops the rule."""
    found = _by_words(kind, type_name, location)
    written = _TAG.search(location)
    tag = f"T{written.group(1)}" if written else found.tag
    if found.rule is None:
        return Proposal(None, tag, found.why)
    if written and found.tag and tag != found.tag:
        return Proposal(
            None,
            tag,
            f"the location says {tag} where its words say {found.tag} ({found.rule}): "
            "no rule proposed",
        )
    pack_name, _, rule_name = found.rule.partition(".")
    pack = packs.get(pack_name)
    spec = None if pack is None else pack.rules.get(rule_name)
    if spec is None:
        return Proposal(None, tag, f"{found.rule} is not among the rule packs read")
    if spec.kinds and kind not in spec.kinds:
        return Proposal(None, tag, f"{found.rule} is not for kind {kind}")
    if not same_unit(unit, spec.units):
        return Proposal(
            None,
            tag,
            f"{found.rule} is in {' or '.join(spec.units)}, the point in {unit!r}: check the unit",
        )
    return Proposal(found.rule, tag, found.why)
