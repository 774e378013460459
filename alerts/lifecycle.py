"""The alarm state machine after ISA-18.2 / IEC 62682, with the closed-loop disposal of Chinese
supervision practice beside it. Pure: a state and an action in, the next state out (or a
`TransitionError` that says why the action is not allowed).

An alarm record is one activation of one sensor, rule and kind. Its ISA state follows from
  - the process condition: active, or returned to normal ("cleared");
  - acknowledged or not (an escalation to a higher level asks for a new acknowledgement);
  - shelved until a time (an operator's decision, with a reason; expires by itself);
  - suppressed by design (a condition in config: the unit is shut down, an upstream alarm);
  - out of service (the sensor is taken out of service for maintenance).
The priority is: out of service, suppressed, shelved, then the ack/condition states:
  unack (active unacknowledged), ack (active acknowledged), rtn_unack (returned to normal
  unacknowledged), normal (returned and acknowledged).
The acknowledgement those states read is the site's (the enterprise's console, ISA-18.2's). The
supervising centre acknowledges apart (`centre_acknowledge`, `centre_acked`): the enterprise's
acknowledgement stops the enterprise's repeats and escalation steps, the centre's the centre's
own, and neither sets the other's. A raise, an escalation and a re-annunciation clear both.
Disposal runs received -> verified -> disposed -> closed; each step needs a note, and closing
needs the condition to have returned to normal. A serious alarm (the tiers configured under
`notify.disposal.review_tiers`) that an enterprise closes is not closed but submitted for the
monitoring centre's review (审核销号): disposed -> review; the centre approves it (review ->
closed) or returns it (review -> verified: the enterprise disposes of it again and closes it
again). Who may do what is `disposal_action`'s: the table of the actor's standing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, cast

from alerts.errors import AlertsError

__all__ = [
    "DISPOSAL_MOVES",
    "DISPOSAL_STEPS",
    "ISA_STATES",
    "OPERATOR_ACTIONS",
    "Action",
    "Lifecycle",
    "NotReviewerError",
    "TransitionError",
    "disposal_action",
    "isa_state",
    "step",
]

ISA_STATES = ("unack", "ack", "rtn_unack", "normal", "shelved", "suppressed", "out_of_service")
DISPOSAL_STEPS = ("received", "verified", "disposed", "review", "closed")
# the actions a person takes (the API's verbs); the rest come from the process or the clock
OPERATOR_ACTIONS = frozenset(
    {
        "acknowledge",
        "centre_acknowledge",
        "shelve",
        "unshelve",
        "comment",
        "verify",
        "dispose",
        "close",
        "submit",
        "approve",
        "return",
    }
)

Action = Literal[
    "raise",
    "escalate",
    "deescalate",
    "clear",
    "acknowledge",
    "centre_acknowledge",
    "shelve",
    "unshelve",
    "expire_shelve",
    "suppress",
    "unsuppress",
    "remove_from_service",
    "return_to_service",
    "comment",
    "verify",
    "dispose",
    "close",
    "submit",
    "approve",
    "return",
    "overdue",
]
# the disposal steps: action -> (the disposal it starts from, the disposal it leads to)
DISPOSAL_MOVES: dict[str, tuple[str, str]] = {
    "verify": ("received", "verified"),
    "dispose": ("verified", "disposed"),
    "close": ("disposed", "closed"),
    "submit": ("disposed", "review"),  # an enterprise's close of a serious alarm
    "approve": ("review", "closed"),  # the centre's review: 批准销号
    "return": ("review", "verified"),  # the centre's review: 退回, disposed of again
}
_NEEDS_RETURNED = frozenset({"close", "submit"})  # the condition must have returned to normal


class TransitionError(AlertsError):
    """An action that the alarm's state does not allow (answered 409 by the API)."""


class NotReviewerError(AlertsError):
    """An action the actor's standing does not allow: approving or returning an alarm is the
    monitoring centre's review, never the enterprise's own (answered 403 by the API)."""


# what a person's disposal step is, by (the step asked, whether the actor is the monitoring
# centre, whether the alarm needs the centre's review): the enterprise's close of a serious
# alarm is a submission; the centre's close is its own review; only the centre reviews
_BY_STANDING: dict[tuple[str, bool, bool], str | None] = {
    ("close", False, True): "submit",
    ("close", False, False): "close",
    ("close", True, True): "close",
    ("close", True, False): "close",
    ("approve", True, True): "approve",
    ("approve", True, False): "approve",
    ("approve", False, True): None,
    ("approve", False, False): None,
    ("return", True, True): "return",
    ("return", True, False): "return",
    ("return", False, True): None,
    ("return", False, False): None,
}


def disposal_action(action: Action, *, centre: bool, review: bool) -> Action:
    """The action a person's `action` is, by standing: `centre` (a key of the monitoring centre:
    admin or operator of every tenant) and `review` (the alarm reached a tier whose closing the
    centre reviews). Raise NotReviewerError for a review by anyone but the centre."""
    got = _BY_STANDING.get((action, centre, review), action)
    if got is None:
        raise NotReviewerError(
            f"cannot {action}: reviewing an enterprise's closing (审核销号) is the monitoring "
            "centre's (an admin or operator key of every tenant), never the enterprise's own"
        )
    return cast(Action, got)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    active: bool = True
    acked: bool = False
    shelved_until: int | None = None  # ms, event of the clock
    suppressed: bool = False
    out_of_service: bool = False
    disposal: str = "received"
    overdue: bool = False
    # the supervising centre's acknowledgement, apart from the site's (`acked`): it stops the
    # centre's own repeats and escalation steps, never the enterprise's
    centre_acked: bool = False

    @property
    def state(self) -> str:
        return isa_state(self)

    @property
    def finished(self) -> bool:
        """Nothing left to do: returned to normal, acknowledged and its disposal closed."""
        return not self.active and self.acked and self.disposal == "closed"


def isa_state(s: Lifecycle) -> str:
    if s.out_of_service:
        return "out_of_service"
    if s.suppressed:
        return "suppressed"
    if s.shelved_until is not None:
        return "shelved"
    if s.active:
        return "ack" if s.acked else "unack"
    return "normal" if s.acked else "rtn_unack"


def _reannunciate(s: Lifecycle) -> Lifecycle:
    """Leaving the last of shelf, suppression and out of service, an alarm is judged afresh:
    one still active sounds again and wants a new acknowledgement (ISA-18.2)."""
    masked = s.shelved_until is not None or s.suppressed or s.out_of_service
    return replace(s, acked=False, centre_acked=False) if s.active and not masked else s


def step(
    s: Lifecycle,
    action: Action,
    *,
    now: int = 0,
    until: int | None = None,
    note: str = "",
) -> Lifecycle:
    """The state after `action` at `now` (ms); raise TransitionError when it is not allowed.

    `until` is the end of a shelve; `note` the comment, required by shelve, comment and the
    disposal steps.
    """
    note = note.strip()
    if action == "raise":
        return Lifecycle(
            shelved_until=s.shelved_until,
            suppressed=s.suppressed,
            out_of_service=s.out_of_service,
        )
    if action in ("escalate", "deescalate", "clear"):
        if not s.active:
            raise TransitionError(f"cannot {action}: the alarm has returned to normal")
        if action == "escalate":
            # a higher level wants a new acknowledgement, of the site and of the centre
            return replace(s, acked=False, centre_acked=False)
        if action == "clear":
            return replace(s, active=False)
        return s
    if action == "acknowledge":
        if s.acked:
            raise TransitionError("the alarm is already acknowledged")
        if s.out_of_service:
            raise TransitionError("the sensor is out of service")
        return replace(s, acked=True)
    if action == "centre_acknowledge":
        if s.centre_acked:
            raise TransitionError("the alarm is already acknowledged by the centre")
        if s.out_of_service:
            raise TransitionError("the sensor is out of service")
        return replace(s, centre_acked=True)
    if action == "shelve":
        if s.out_of_service:
            raise TransitionError("the sensor is out of service")
        if until is None or until <= now:
            raise TransitionError("a shelve needs an end in the future")
        if not note:
            raise TransitionError("a shelve needs a reason")
        # a shelve is the point's: from an alarm whose handling is over it would hide the
        # point's next activation, up to this alarm's level, with nothing on screen to show it
        if not s.active and s.acked:
            raise TransitionError("the alarm has returned to normal and is acknowledged")
        if not s.active and s.centre_acked:
            raise TransitionError(
                "the alarm has returned to normal and is acknowledged by the centre"
            )
        if not s.active and s.disposal == "closed":
            raise TransitionError("the alarm has returned to normal and its disposal is closed")
        return replace(s, shelved_until=until)
    if action in ("unshelve", "expire_shelve"):
        if s.shelved_until is None:
            raise TransitionError("the alarm is not shelved")
        if action == "expire_shelve" and s.shelved_until > now:
            raise TransitionError("the shelve has not expired yet")
        return _reannunciate(replace(s, shelved_until=None))
    if action in ("suppress", "unsuppress"):
        want = action == "suppress"
        if s.suppressed == want:
            raise TransitionError(f"the alarm is already {'' if want else 'not '}suppressed")
        return replace(s, suppressed=True) if want else _reannunciate(replace(s, suppressed=False))
    if action in ("remove_from_service", "return_to_service"):
        want = action == "remove_from_service"
        if s.out_of_service == want:
            raise TransitionError(f"the sensor is already {'out of' if want else 'in'} service")
        if want:
            return replace(s, out_of_service=True)
        return _reannunciate(replace(s, out_of_service=False))
    if action == "comment":
        if not note:
            raise TransitionError("a comment needs text")
        return s
    if action in DISPOSAL_MOVES:
        before, after = DISPOSAL_MOVES[action]
        if not note:
            raise TransitionError(f"{action} needs a note")
        if s.disposal == "review" and action in _NEEDS_RETURNED:
            raise TransitionError(
                f"cannot {action}: it awaits the monitoring centre's review (待审核): the centre "
                "approves or returns it"
            )
        if s.disposal != before:
            raise TransitionError(f"cannot {action}: disposal is {s.disposal}, not {before}")
        if action in _NEEDS_RETURNED and s.active:
            raise TransitionError(f"cannot {action}: the alarm is still active")
        return replace(s, disposal=after, overdue=False)
    if action == "overdue":
        if s.overdue or s.disposal == "closed":
            raise TransitionError("the disposal is not overdue")
        return replace(s, overdue=True)
    raise TransitionError(f"unknown action {action!r}")
