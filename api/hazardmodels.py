"""The bodies and answers of the hidden-danger routes (`api.hazards`): strict (an unknown field,
a time in quotes or in seconds is 422), frozen."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from alerts.hazardflow import HazardItem, HazardPlan, overdue_since, review_overdue_since
from alerts.hazards import HazardEvent
from alerts.hazardsupervision import Supervision
from api.bounds import DB_INT_MAX
from api.notes import Note, RequiredNote, clean_note

__all__ = [
    "HazardDetail",
    "HazardEventPublic",
    "HazardIn",
    "HazardPlanIn",
    "HazardPublic",
    "StepIn",
    "SuperviseIn",
    "SupervisionPublic",
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


def _notice_url(url: str) -> str:
    """An http or https address, whole: no space nor control character in it (a link a
    dashboard shows, never `javascript:` or a file)."""
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        raise ValueError("notice_url holds no space nor control character")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("notice_url: an http:// or https:// address of the public notice")
    return url


class SuperviseIn(_Strict):
    """A major item listed for supervision (挂牌督办) by the centre, or its listing changed
    (`comment` then required): its level, the issuing authority, the document number, the
    public notice's address (optional). The deadline is the item's."""

    level: Literal["province", "city", "county"]
    authority: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_line)] = Field(
        description="the issuing authority (挂牌督办单位), e.g. 某市安全生产委员会"
    )
    document_no: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_line)] = Field(
        description="the document number (文号), e.g. 某安委办〔2026〕12号"
    )
    notice_url: Annotated[str, Field(max_length=2000), AfterValidator(_notice_url)] | None = None
    comment: Note = ""

    @model_validator(mode="after")
    def _words(self) -> SuperviseIn:
        if not self.authority or not self.document_no:
            raise ValueError("authority and document_no hold words, not only spaces")
        return self


class SupervisionPublic(BaseModel):
    level: str = Field(description="province, city or county")
    authority: str
    document_no: str
    notice_url: str | None
    issued_at: int
    issued_by: str = Field(description="the centre's key that listed it")
    deadline: int | None = Field(description="the item's deadline (the supervision's)")
    review_due: int | None = Field(description="the item's: its review request + 10 days")
    status: str = Field(description="listed; closed when the item is closed (销号)")
    result: str | None = Field(description="the closing's comment")
    closed_at: int | None
    updated_at: int


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
    supervision: SupervisionPublic | None = Field(
        default=None, description="its listed supervision (挂牌督办), null: not listed"
    )


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
    steps: list[str] = Field(
        default=[],
        description="the steps the calling key may take now (its party's, from the item's "
        "status; `start` once the centre has set a deadline); [] for a viewer",
    )


def _fields(item: HazardItem, now: int, ticket: Supervision | None) -> dict[str, Any]:
    values = asdict(item)  # (the plan as its elements)
    values["alarm_ids"], values["sensor_ids"] = list(item.alarm_ids), list(item.sensor_ids)
    values["overdue"] = overdue_since(item, now) is not None
    values["review_overdue"] = review_overdue_since(item, now) is not None
    if ticket is not None:
        said = {k: v for k, v in asdict(ticket).items() if k != "hazard_id"}
        values["supervision"] = SupervisionPublic(
            **said, deadline=item.deadline, review_due=item.review_due
        )
    return values


def public(item: HazardItem, now: int, ticket: Supervision | None = None) -> HazardPublic:
    return HazardPublic(**_fields(item, now, ticket))


def detail(
    item: HazardItem,
    events: list[HazardEvent],
    now: int,
    ticket: Supervision | None = None,
    steps: list[str] | None = None,
) -> HazardDetail:
    said = [HazardEventPublic(**{k: v for k, v in asdict(e).items() if k != "hazard_id"})
            for e in events]  # fmt: skip
    return HazardDetail(**_fields(item, now, ticket), events=said, steps=steps or [])
