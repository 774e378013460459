"""The hidden-danger item (隐患, DOMAIN 6) and its state machine, pure: what an item holds, which
party may take which step from which status, and what a step needs (a major item's governance
plan of six elements before its rectification starts, 16号令 Art. 15; a comment on a rejection,
a closing or a deadline moved). `advance` judges one step and gives the item after it; the
steps are a table (`STEPS`), not nested ifs. `alerts.hazards` keeps the items and their audit,
`alerts.hazardalarms` raises the deadlines' alarms.

    reported -> graded -> rectifying -> review_requested -> accepted -> closed (销号)
                                ^                |
                                +-- rejected <---+

The centre may re-grade until the acceptance: an item made major after its start without its
complete plan goes back to `graded`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal, get_args

__all__ = [
    "ACTIONS",
    "CENTRE",
    "DAY_MS",
    "ENTERPRISE",
    "GRADES",
    "PLAN_ELEMENTS",
    "PRODUCTION_STOPS",
    "REVIEW_DAYS",
    "SOURCES",
    "STATUSES",
    "STEPS",
    "Action",
    "HazardConflictError",
    "HazardError",
    "HazardForbiddenError",
    "HazardIncompleteError",
    "HazardItem",
    "HazardPlan",
    "Party",
    "Status",
    "Step",
    "advance",
    "overdue_since",
    "review_overdue_since",
]

DAY_MS = 86_400_000
REVIEW_DAYS = 10  # the on-site acceptance within 10 days of the review request (DOMAIN 6)

Status = Literal[
    "reported", "graded", "rectifying", "review_requested", "accepted", "rejected", "closed"
]
STATUSES: tuple[str, ...] = get_args(Status)
Action = Literal[
    "grade", "plan", "deadline", "start", "request-review", "accept", "reject", "close", "comment"
]
ACTIONS: tuple[str, ...] = get_args(Action)
Party = Literal["enterprise", "centre"]
ENTERPRISE: Party = "enterprise"
CENTRE: Party = "centre"
SOURCES = ("self_check", "inspection", "monitoring_alarm", "complaint")
GRADES = ("general", "major")
PRODUCTION_STOPS = ("full", "partial", "none")
# a major item's governance plan (治理方案), 16号令 Art. 15 as the Hubei rule words it
PLAN_ELEMENTS = (
    "objectives",  # (1) 治理的目标和任务
    "methods",  # (2) 采取的方法和措施
    "funds_materials",  # (3) 经费和物资的落实
    "responsible",  # (4) 负责治理的机构和人员
    "schedule",  # (5) 治理的时限和要求
    "safety_emergency",  # (6) 安全措施和应急预案
)


class HazardError(Exception):
    """A step refused; the message says why, for the person who asked."""


class HazardForbiddenError(HazardError):
    """The caller's party may not take the step (the API's 403)."""


class HazardConflictError(HazardError):
    """The item's status does not allow the step (409)."""


class HazardIncompleteError(HazardError):
    """The step lacks what it needs: the plan, a deadline, a comment (422)."""


@dataclass(frozen=True, slots=True)
class HazardPlan:
    """A major item's governance plan: the six elements, each words ("" not given yet)."""

    objectives: str = ""
    methods: str = ""
    funds_materials: str = ""
    responsible: str = ""
    schedule: str = ""
    safety_emergency: str = ""

    def missing(self) -> list[str]:
        return [name for name in PLAN_ELEMENTS if not getattr(self, name).strip()]


@dataclass(frozen=True, slots=True)
class HazardItem:
    """One hidden-danger item. Times are ms since the epoch; `deadline` the rectification's
    (set by the centre at grading or later, proposed by the reporter), `review_due` the
    acceptance's (the review request + 10 days)."""

    id: int
    tenant: str
    site: str
    source: str
    category: str
    grade: str  # the reporter's assessment until the centre grades it
    description: str
    location: str
    alarm_ids: tuple[int, ...]
    sensor_ids: tuple[str, ...]
    found_at: int
    found_by: str
    reported_by: str  # the API key that reported it
    reported_at: int
    status: str = "reported"
    responsible_person: str = ""
    measures: str = ""
    funds_yuan: float | None = None
    deadline: int | None = None
    interim_measures: str = ""
    plan: HazardPlan | None = None
    production_stop: str | None = None
    requested_at: int | None = None  # the latest review request
    review_due: int | None = None
    updated_at: int = 0
    closed_at: int | None = None
    closed_by: str | None = None


# what a step may change, and what the enterprise's plan step fills (the rectification)
_PLAN_FIELDS = frozenset(
    {"responsible_person", "measures", "funds_yuan", "interim_measures", "plan", "production_stop"}
)
_ITEM_FIELDS = frozenset(f.name for f in fields(HazardItem))


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the state machine: who takes it, from which statuses, the status after it
    (None: unchanged), whether a comment is required, and the fields it may set."""

    party: frozenset[Party]
    from_statuses: frozenset[str]
    to: str | None
    comment_required: bool
    sets: frozenset[str] = frozenset()


_BOTH: frozenset[Party] = frozenset({ENTERPRISE, CENTRE})
_E: frozenset[Party] = frozenset({ENTERPRISE})
_C: frozenset[Party] = frozenset({CENTRE})
_OPEN = frozenset(STATUSES) - {"closed"}
# the centre grades, and re-grades until its acceptance
_REGRADE = frozenset({"reported", "graded", "rectifying", "rejected", "review_requested"})
# the statuses from the rectification's start on, where what it needs stays given (`_ready`)
_STARTED = frozenset({"rectifying", "rejected", "review_requested"})
STEPS: dict[str, Step] = {
    "grade": Step(  # (to: `_graded`)
        _C, _REGRADE, None, False, frozenset({"grade", "deadline", "category"}),
    ),
    "plan": Step(
        _E, frozenset({"reported", "graded", "rectifying", "rejected"}), None, False, _PLAN_FIELDS
    ),
    "deadline": Step(_C, _OPEN, None, True, frozenset({"deadline"})),
    "start": Step(_E, frozenset({"graded", "rejected"}), "rectifying", False),
    "request-review": Step(_E, frozenset({"rectifying"}), "review_requested", True),
    "accept": Step(_C, frozenset({"review_requested"}), "accepted", False),
    "reject": Step(_C, frozenset({"review_requested"}), "rejected", True),
    "close": Step(_C, frozenset({"accepted"}), "closed", True),
    "comment": Step(_BOTH, frozenset(STATUSES), None, True),
}  # fmt: skip
assert set(STEPS) == set(ACTIONS)
assert all(s.sets <= _ITEM_FIELDS for s in STEPS.values())


def _who(parties: frozenset[Party]) -> str:
    if parties == _C:
        return "the monitoring centre's (an admin or operator key of every tenant)"
    return "the enterprise's (a key of the item's tenant, not the centre's)"


def advance(
    item: HazardItem,
    action: str,
    party: Party,
    changes: Mapping[str, object],
    comment: str,
    actor: str,
    now: int,
) -> HazardItem:
    """The item after `action` by `party` (`actor` the key's name) at `now`, with `changes`
    (fields the step sets: `Step.sets`). Raise HazardForbiddenError, HazardConflictError or
    HazardIncompleteError saying why; the item is never half changed."""
    step = STEPS.get(action)
    if step is None:
        raise HazardConflictError(f"no step {action!r}; the steps: {', '.join(ACTIONS)}")
    if party not in step.party:
        raise HazardForbiddenError(f"{action!r} of a hidden-danger item is {_who(step.party)}")
    if item.status not in step.from_statuses:
        raise HazardConflictError(
            f"item {item.id} is {item.status}: {action!r} is taken from "
            f"{', '.join(s for s in STATUSES if s in step.from_statuses)}"
        )
    unknown = sorted(set(changes) - step.sets)
    if unknown:
        raise HazardIncompleteError(f"{action!r} does not set {', '.join(unknown)}")
    if step.comment_required and not comment.strip():
        raise HazardIncompleteError(f"{action!r} needs a comment saying why (须填写说明)")
    after = replace(item, **changes, updated_at=now)  # type: ignore[arg-type]
    deadline = changes.get("deadline")
    if isinstance(deadline, int) and deadline <= now:
        raise HazardIncompleteError(f"deadline {deadline} is not after now ({now} ms)")
    if action == "deadline" and deadline is None:
        raise HazardIncompleteError("'deadline' needs the deadline (ms since the epoch)")
    if action == "plan" and not changes:
        raise HazardIncompleteError(f"'plan' sets at least one of {', '.join(sorted(step.sets))}")
    if action == "grade":
        after = _graded(item, after, changes, comment)
    if action == "start" or (action == "plan" and item.status in _STARTED):
        _ready(after)  # (a plan step after the start cannot empty what the start needed)
    if action == "request-review":
        after = replace(after, requested_at=now, review_due=now + REVIEW_DAYS * DAY_MS)
    if action == "close":
        after = replace(after, closed_at=now, closed_by=actor)
    return after if step.to is None else replace(after, status=step.to)


def _graded(
    item: HazardItem, after: HazardItem, changes: Mapping[str, object], comment: str
) -> HazardItem:
    """The item after the centre's grade step: `graded` from `reported`; a re-grade after
    the start keeps the status, but an item made major without its complete plan goes back
    to `graded` (the enterprise gives the plan and starts again, 16号令 Art. 15). Moving a
    deadline already set needs a comment, as the deadline step does."""
    if changes.get("grade") not in GRADES:
        raise HazardIncompleteError(f"'grade' needs the grade: {' or '.join(GRADES)}")
    moved = "deadline" in changes and item.deadline not in (None, changes["deadline"])
    if moved and not comment.strip():
        raise HazardIncompleteError(
            "'grade' moving the deadline needs a comment saying why (须填写说明)"
        )
    if item.status in ("reported", "graded"):
        return replace(after, status="graded")
    if after.grade == "major" and item.grade != "major":
        try:
            _ready(after)
        except HazardIncompleteError:
            return replace(after, status="graded")
    return after


def _ready(item: HazardItem) -> None:
    """What an item needs before its rectification starts: a deadline, a responsible person
    and measures (五到位); a major item also its plan's six elements and its production stop."""
    missing = [
        name
        for name, given in (
            ("deadline", item.deadline is not None),
            ("responsible_person", bool(item.responsible_person.strip())),
            ("measures", bool(item.measures.strip())),
        )
        if not given
    ]
    if item.grade == "major":
        plan = item.plan or HazardPlan()
        missing += [f"plan.{name}" for name in plan.missing()]
        if item.production_stop is None:
            missing.append("production_stop")
    if missing:
        said = (
            "a major item's plan needs its six elements (重大隐患治理方案六要素); "
            if (item.grade == "major")
            else ""
        )
        raise HazardIncompleteError(
            f"item {item.id} cannot start its rectification: {said}missing {', '.join(missing)}"
        )


def overdue_since(item: HazardItem, now: int) -> int | None:
    """When the item fell overdue (its deadline), or None: past its rectification deadline and
    not closed, unless its rectification was submitted for review by the deadline (then the
    centre's review is what waits: `review_overdue_since`)."""
    if item.deadline is None or item.status == "closed" or now < item.deadline:
        return None
    on_time = item.requested_at is not None and item.requested_at <= item.deadline
    if item.status in ("review_requested", "accepted") and on_time:
        return None
    return item.deadline


def review_overdue_since(item: HazardItem, now: int) -> int | None:
    """When the review request went undecided past its 10 days, or None."""
    if item.status != "review_requested" or item.review_due is None or now < item.review_due:
        return None
    return item.review_due
