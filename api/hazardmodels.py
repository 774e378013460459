"""The bodies and answers of the hidden-danger routes (`api.hazards`): strict (an unknown field,
a time in quotes or in seconds is 422), frozen."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from alerts.hazardflow import HazardItem, HazardPlan, overdue_since, review_overdue_since
from alerts.hazards import HazardEvent
from api.bounds import DB_INT_MAX
from api.notes import Note, RequiredNote, clean_note

__all__ = [
    "HazardDetail",
    "HazardEventPublic",
    "HazardIn",
    "HazardPlanIn",
    "HazardPublic",
    "StepIn",
    "detail",
    "public",
]

Grade = Literal["general", "major"]
Source = Literal["self_check", "inspection", "monitoring_alarm", "complaint"]
Ms = Field(ge=1, le=DB_INT_MAX, strict=True)
_Id = Field(min_length=1, max_length=200)
_Text = Field(default="", max_length=2000)
MAX_IDS = 100  # alarm_ids, sensor_ids: at most this many


def _line(text: str) -> str:
    """A one-line field (a category, a place, a name): as a note (format characters taken
    out, stripped), and no control character at all, not even a tab or a new line."""
    cleaned = clean_note(text)
    if any(ch in "\t\n\r" for ch in cleaned):
        raise ValueError("a one-line field holds no tab nor line break")
    return cleaned


Line = Annotated[str, Field(max_length=200), AfterValidator(_line)]  # a one-line text (`_line`)
Place = Annotated[str, Field(max_length=500), AfterValidator(_line)]


AlarmId = Annotated[int, Field(ge=1, le=DB_INT_MAX, strict=True)]
SensorId = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HazardIn(_Strict):
    """A hidden danger reported: by the enterprise (self-check, a complaint) or the centre (an
    inspection); `from_alarm` opens it from an alarm of the tenant (links it and fills site,
    sensor and location; source `monitoring_alarm`)."""

    from_alarm: int | None = Field(default=None, ge=1, le=DB_INT_MAX, strict=True)
    tenant: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the enterprise; may be left out by a key of one tenant, or with from_alarm",
    )  # fmt: skip
    site: str | None = Field(default=None, min_length=1, max_length=200)
    source: Source | None = Field(
        default=None,
        description="self_check (an enterprise's default), inspection (the centre's default), "
        "monitoring_alarm (from_alarm's), complaint",
    )
    category: Line = ""
    grade: Grade = Field(default="general", description="the reporter's assessment")
    description: RequiredNote
    location: Place = ""
    alarm_ids: list[AlarmId] = Field(default=[], max_length=MAX_IDS)
    sensor_ids: list[SensorId] = Field(default=[], max_length=MAX_IDS)
    found_at: int | None = Field(
        default=None,
        ge=1,
        le=DB_INT_MAX,
        strict=True,
        description="ms, at most 366 days back; from_alarm's start, or the report's time, if "
        "left out",
    )
    found_by: Line = Field(default="", description="the key's name if left out")
    deadline: int | None = Field(
        default=None,
        ge=1,
        le=DB_INT_MAX,
        strict=True,
        description="the reporter's proposed deadline, ms: kept in the report's audit line, not "
        "binding (the centre's grade or deadline step sets the item's deadline)",
    )
    interim_measures: Note = ""


class HazardPlanIn(_Strict):
    """A major item's governance plan (治理方案): the six elements."""

    objectives: Note = Field(default="", description="(1) 治理的目标和任务")
    methods: Note = Field(default="", description="(2) 采取的方法和措施")
    funds_materials: Note = Field(default="", description="(3) 经费和物资的落实")
    responsible: Note = Field(default="", description="(4) 负责治理的机构和人员")
    schedule: Note = Field(default="", description="(5) 治理的时限和要求")
    safety_emergency: Note = Field(default="", description="(6) 安全措施和应急预案")

    @model_validator(mode="after")
    def _some(self) -> HazardPlanIn:
        if not self.model_fields_set:
            raise ValueError("a plan gives at least one of its six elements")
        return self


class StepIn(_Strict):
    """One step's body: `comment`, and the fields the step sets (grade: grade, deadline,
    category; plan: responsible_person, measures, funds_yuan, interim_measures, plan,
    production_stop; deadline: deadline). Another field is 422."""

    comment: Note = ""
    grade: Grade | None = None
    deadline: int | None = Field(default=None, ge=1, le=DB_INT_MAX, strict=True)
    category: Line | None = None
    responsible_person: Line | None = None
    measures: Note | None = None
    funds_yuan: float | None = Field(default=None, ge=0, le=1e12)
    interim_measures: Note | None = None
    plan: HazardPlanIn | None = None
    production_stop: Literal["full", "partial", "none"] | None = None

    def changes(self, plan: HazardPlan | None) -> dict[str, object]:
        """The fields given (but the comment); the plan's elements given over `plan`, the
        item's (an element left out keeps what it said)."""
        out: dict[str, object] = {}
        for name in sorted(self.model_fields_set - {"comment"}):
            value = getattr(self, name)
            if isinstance(value, HazardPlanIn):
                given = {k: getattr(value, k) for k in value.model_fields_set}
                out[name] = replace(plan or HazardPlan(), **given)
            elif value is not None:
                out[name] = value
        return out


class HazardPublic(BaseModel):
    id: int
    tenant: str
    site: str
    source: str
    category: str
    grade: str
    description: str
    location: str
    alarm_ids: list[int]
    sensor_ids: list[str]
    found_at: int
    found_by: str
    reported_by: str
    reported_at: int
    status: str
    responsible_person: str
    measures: str
    funds_yuan: float | None
    deadline: int | None
    interim_measures: str
    plan: dict[str, str] | None
    production_stop: str | None
    requested_at: int | None
    review_due: int | None = Field(description="the review request + 10 days, ms")
    updated_at: int
    closed_at: int | None
    closed_by: str | None
    overdue: bool = Field(description="past its rectification deadline, not closed")
    review_overdue: bool = Field(description="its review request undecided past review_due")


class HazardEventPublic(BaseModel):
    id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str | None
    party: str
    at: int
    comment: str
    changes: dict[str, Any]


class HazardDetail(HazardPublic):
    events: list[HazardEventPublic] = Field(description="the audit, oldest first")


def _fields(item: HazardItem, now: int) -> dict[str, Any]:
    values = asdict(item)  # (the plan as its elements)
    values["alarm_ids"], values["sensor_ids"] = list(item.alarm_ids), list(item.sensor_ids)
    values["overdue"] = overdue_since(item, now) is not None
    values["review_overdue"] = review_overdue_since(item, now) is not None
    return values


def public(item: HazardItem, now: int) -> HazardPublic:
    return HazardPublic(**_fields(item, now))


def detail(item: HazardItem, events: list[HazardEvent], now: int) -> HazardDetail:
    said = [HazardEventPublic(**{k: v for k, v in asdict(e).items() if k != "hazard_id"})
            for e in events]  # fmt: skip
    return HazardDetail(**_fields(item, now), events=said)
