"""The alarm lifecycle (ISA-18.2 states and closed-loop disposal): a table of every action from
every ISA state, then invariants over random runs (hypothesis).

The table's expectations are written from ISA-18.2 / IEC 62682 and the module's stated rules, not
read back from the module. Rows marked xfail pin what we think the standard asks for and the
module does not do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast, get_args

import pytest
from _pytest.mark import ParameterSet
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.lifecycle import (
    DISPOSAL_STEPS,
    ISA_STATES,
    OPERATOR_ACTIONS,
    Action,
    Lifecycle,
    NotReviewerError,
    TransitionError,
    disposal_action,
    isa_state,
    step,
)

ACTIONS: tuple[str, ...] = get_args(Action)
NOW = 1_000
UNTIL = 5_000  # the end of the shelves in the starting states
LATER = 9_000  # the end of a new shelve
NOTE = "checked on site"

SHELVE = {"now": NOW, "until": LATER, "note": "nuisance, work order 42"}
NOTED = {"note": NOTE}
NONE: Mapping[str, Any] = {}

# Starting states. The first seven are named after the ISA state they are in.
STARTS = {
    "unack": Lifecycle(),
    "ack": Lifecycle(acked=True),
    "rtn_unack": Lifecycle(active=False),
    "normal": Lifecycle(active=False, acked=True),
    "shelved": Lifecycle(shelved_until=UNTIL),
    "suppressed": Lifecycle(suppressed=True),
    "out_of_service": Lifecycle(out_of_service=True),
    # variants for the rules that depend on more than the ISA state
    "shelved_ack": Lifecycle(acked=True, shelved_until=UNTIL),
    "shelved_rtn": Lifecycle(active=False, acked=True, shelved_until=UNTIL),
    "suppressed_ack": Lifecycle(acked=True, suppressed=True),
    "out_of_service_ack": Lifecycle(acked=True, out_of_service=True),
    "unack_overdue": Lifecycle(overdue=True),
    "ack_verified": Lifecycle(acked=True, disposal="verified"),
    "ack_disposed": Lifecycle(acked=True, disposal="disposed"),
    "rtn_unack_disposed": Lifecycle(active=False, disposal="disposed"),
    "normal_verified_overdue": Lifecycle(
        active=False, acked=True, disposal="verified", overdue=True
    ),
    "normal_disposed_overdue": Lifecycle(
        active=False, acked=True, disposal="disposed", overdue=True
    ),
    "normal_closed": Lifecycle(active=False, acked=True, disposal="closed"),
    # the centre's review of an enterprise's closing (审核销号)
    "normal_disposed": Lifecycle(active=False, acked=True, disposal="disposed"),
    "normal_review": Lifecycle(active=False, acked=True, disposal="review"),
    "rtn_unack_review": Lifecycle(active=False, disposal="review"),
    "rtn_unack_closed": Lifecycle(active=False, disposal="closed"),
    "rtn_centre_acked": Lifecycle(active=False, centre_acked=True),
    "normal_review_overdue": Lifecycle(active=False, acked=True, disposal="review", overdue=True),
    "centre_acked": Lifecycle(centre_acked=True),
    "both_acked": Lifecycle(acked=True, centre_acked=True),
    "shelved_both": Lifecycle(acked=True, centre_acked=True, shelved_until=UNTIL),
    "shelved_both_rtn": Lifecycle(active=False, acked=True, centre_acked=True, shelved_until=UNTIL),
    "layered": Lifecycle(
        acked=True,
        shelved_until=UNTIL,
        suppressed=True,
        out_of_service=True,
        disposal="verified",
        overdue=True,
    ),
}

ISA_REANNUNCIATE = (
    "ISA-18.2 / IEC 62682 state diagram: leaving shelved, suppressed-by-design or out-of-service "
    "goes back to Normal and the alarm is evaluated again; an alarm whose condition is still "
    "active is annunciated anew as Unack, so an acknowledgement given before does not carry over"
)


def ok(
    start: str,
    action: str,
    kwargs: Mapping[str, Any],
    expected: Lifecycle,
    isa: str,
    *,
    tag: str = "",
    xfail: str = "",
) -> ParameterSet:
    """A row where `action` is allowed and leads to `expected`, in ISA state `isa`."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(
        STARTS[start], action, dict(kwargs), expected, isa, id=_id(start, action, tag), marks=marks
    )


def no(
    start: str, action: str, kwargs: Mapping[str, Any], message: str, *, tag: str = ""
) -> ParameterSet:
    """A row where `action` is refused with a TransitionError that says `message`."""
    return pytest.param(
        STARTS[start], action, dict(kwargs), message, None, id=_id(start, action, tag)
    )


def _id(start: str, action: str, tag: str) -> str:
    return f"{start}/{action}" + (f"/{tag}" if tag else "")


L = Lifecycle
GONE = "has returned to normal"
ACKED = "already acknowledged"
OOS = "out of service"
UNSHELVED = "not shelved"

TABLE = [
    # -- unack: active, not acknowledged ------------------------------------------------------
    ok("unack", "raise", NONE, L(), "unack"),
    ok("unack", "escalate", NONE, L(), "unack"),
    ok("unack", "deescalate", NONE, L(), "unack"),
    ok("unack", "clear", NONE, L(active=False), "rtn_unack"),
    ok("unack", "acknowledge", NONE, L(acked=True), "ack"),
    ok("unack", "shelve", SHELVE, L(shelved_until=LATER), "shelved"),
    no("unack", "unshelve", NONE, UNSHELVED),
    no("unack", "expire_shelve", {"now": LATER}, UNSHELVED),
    ok("unack", "suppress", NONE, L(suppressed=True), "suppressed"),
    no("unack", "unsuppress", NONE, "already not suppressed"),
    ok("unack", "remove_from_service", NONE, L(out_of_service=True), "out_of_service"),
    no("unack", "return_to_service", NONE, "already in service"),
    ok("unack", "comment", NOTED, L(), "unack"),
    ok("unack", "verify", NOTED, L(disposal="verified"), "unack"),
    no("unack", "dispose", NOTED, "disposal is received, not verified"),
    no("unack", "close", NOTED, "disposal is received, not disposed"),
    ok("unack", "overdue", NONE, L(overdue=True), "unack"),
    # -- ack: active, acknowledged ------------------------------------------------------------
    ok("ack", "raise", NONE, L(), "unack"),  # a new activation asks for a new acknowledgement
    ok("ack", "escalate", NONE, L(), "unack"),  # a higher level asks for a new acknowledgement
    ok("ack", "deescalate", NONE, L(acked=True), "ack"),
    ok("ack", "clear", NONE, L(active=False, acked=True), "normal"),
    no("ack", "acknowledge", NONE, ACKED),
    ok("ack", "shelve", SHELVE, L(acked=True, shelved_until=LATER), "shelved"),
    no("ack", "unshelve", NONE, UNSHELVED),
    no("ack", "expire_shelve", {"now": LATER}, UNSHELVED),
    ok("ack", "suppress", NONE, L(acked=True, suppressed=True), "suppressed"),
    no("ack", "unsuppress", NONE, "already not suppressed"),
    ok("ack", "remove_from_service", NONE, L(acked=True, out_of_service=True), "out_of_service"),
    no("ack", "return_to_service", NONE, "already in service"),
    ok("ack", "comment", NOTED, L(acked=True), "ack"),
    ok("ack", "verify", NOTED, L(acked=True, disposal="verified"), "ack"),
    no("ack", "dispose", NOTED, "disposal is received, not verified"),
    no("ack", "close", NOTED, "disposal is received, not disposed"),
    ok("ack", "overdue", NONE, L(acked=True, overdue=True), "ack"),
    # -- rtn_unack: returned to normal, not acknowledged -------------------------------------
    ok("rtn_unack", "raise", NONE, L(), "unack"),
    no("rtn_unack", "escalate", NONE, GONE),
    no("rtn_unack", "deescalate", NONE, GONE),
    no("rtn_unack", "clear", NONE, GONE),
    ok("rtn_unack", "acknowledge", NONE, L(active=False, acked=True), "normal"),
    ok("rtn_unack", "shelve", SHELVE, L(active=False, shelved_until=LATER), "shelved"),
    no("rtn_unack", "unshelve", NONE, UNSHELVED),
    no("rtn_unack", "expire_shelve", {"now": LATER}, UNSHELVED),
    ok("rtn_unack", "suppress", NONE, L(active=False, suppressed=True), "suppressed"),
    no("rtn_unack", "unsuppress", NONE, "already not suppressed"),
    ok(
        "rtn_unack",
        "remove_from_service",
        NONE,
        L(active=False, out_of_service=True),
        "out_of_service",
    ),
    no("rtn_unack", "return_to_service", NONE, "already in service"),
    ok("rtn_unack", "comment", NOTED, L(active=False), "rtn_unack"),
    ok("rtn_unack", "verify", NOTED, L(active=False, disposal="verified"), "rtn_unack"),
    no("rtn_unack", "dispose", NOTED, "disposal is received, not verified"),
    no("rtn_unack", "close", NOTED, "disposal is received, not disposed"),
    ok("rtn_unack", "overdue", NONE, L(active=False, overdue=True), "rtn_unack"),
    # -- normal: returned to normal and acknowledged ------------------------------------------
    ok("normal", "raise", NONE, L(), "unack"),
    no("normal", "escalate", NONE, GONE),
    no("normal", "deescalate", NONE, GONE),
    no("normal", "clear", NONE, GONE),
    no("normal", "acknowledge", NONE, ACKED),
    no("normal", "shelve", SHELVE, "returned to normal and is acknowledged"),
    no("normal", "unshelve", NONE, UNSHELVED),
    no("normal", "expire_shelve", {"now": LATER}, UNSHELVED),
    ok("normal", "suppress", NONE, L(active=False, acked=True, suppressed=True), "suppressed"),
    no("normal", "unsuppress", NONE, "already not suppressed"),
    ok(
        "normal",
        "remove_from_service",
        NONE,
        L(active=False, acked=True, out_of_service=True),
        "out_of_service",
    ),
    no("normal", "return_to_service", NONE, "already in service"),
    ok("normal", "comment", NOTED, L(active=False, acked=True), "normal"),
    ok("normal", "verify", NOTED, L(active=False, acked=True, disposal="verified"), "normal"),
    no("normal", "dispose", NOTED, "disposal is received, not verified"),
    no("normal", "close", NOTED, "disposal is received, not disposed"),
    ok("normal", "overdue", NONE, L(active=False, acked=True, overdue=True), "normal"),
    # -- shelved (active, unacknowledged, shelved until UNTIL) --------------------------------
    ok("shelved", "raise", NONE, L(shelved_until=UNTIL), "shelved"),  # the shelve stays
    ok("shelved", "escalate", NONE, L(shelved_until=UNTIL), "shelved"),
    ok("shelved", "deescalate", NONE, L(shelved_until=UNTIL), "shelved"),
    ok("shelved", "clear", NONE, L(active=False, shelved_until=UNTIL), "shelved"),
    ok("shelved", "acknowledge", NONE, L(acked=True, shelved_until=UNTIL), "shelved"),
    ok("shelved", "shelve", SHELVE, L(shelved_until=LATER), "shelved", tag="extend"),
    ok("shelved", "unshelve", NONE, L(), "unack"),
    ok("shelved", "unshelve", {"now": NOW}, L(), "unack", tag="before-the-end"),
    no("shelved", "expire_shelve", {"now": UNTIL - 1}, "not expired yet", tag="early"),
    ok("shelved", "expire_shelve", {"now": UNTIL}, L(), "unack", tag="at-the-end"),
    ok("shelved", "expire_shelve", {"now": UNTIL + 1}, L(), "unack", tag="late"),
    ok("shelved", "suppress", NONE, L(shelved_until=UNTIL, suppressed=True), "suppressed"),
    no("shelved", "unsuppress", NONE, "already not suppressed"),
    ok(
        "shelved",
        "remove_from_service",
        NONE,
        L(shelved_until=UNTIL, out_of_service=True),
        "out_of_service",
    ),
    no("shelved", "return_to_service", NONE, "already in service"),
    ok("shelved", "comment", NOTED, L(shelved_until=UNTIL), "shelved"),
    ok("shelved", "verify", NOTED, L(shelved_until=UNTIL, disposal="verified"), "shelved"),
    no("shelved", "dispose", NOTED, "disposal is received, not verified"),
    no("shelved", "close", NOTED, "disposal is received, not disposed"),
    ok("shelved", "overdue", NONE, L(shelved_until=UNTIL, overdue=True), "shelved"),
    ok("shelved_ack", "escalate", NONE, L(shelved_until=UNTIL), "shelved"),
    ok("shelved_ack", "clear", NONE, L(active=False, acked=True, shelved_until=UNTIL), "shelved"),
    ok("shelved_rtn", "unshelve", NONE, L(active=False, acked=True), "normal"),
    no("shelved_rtn", "shelve", SHELVE, "returned to normal and is acknowledged", tag="extend"),
    # the centre's own acknowledgement, or a closed disposal, ends the alarm's handling as the
    # enterprise's acknowledgement does: a shelve from it would hide the point's next activation
    no("rtn_centre_acked", "shelve", SHELVE, "acknowledged by the centre"),
    no("rtn_unack_closed", "shelve", SHELVE, "its disposal is closed"),
    no("normal_closed", "shelve", SHELVE, "returned to normal and is acknowledged"),
    ok("shelved_ack", "unshelve", NONE, L(), "unack"),
    ok(
        "shelved_ack",
        "expire_shelve",
        {"now": UNTIL},
        L(),
        "unack",
    ),
    # -- suppressed (by design; active, unacknowledged) --------------------------------------
    ok("suppressed", "raise", NONE, L(suppressed=True), "suppressed"),  # the suppression stays
    ok("suppressed", "escalate", NONE, L(suppressed=True), "suppressed"),
    ok("suppressed", "deescalate", NONE, L(suppressed=True), "suppressed"),
    ok("suppressed", "clear", NONE, L(active=False, suppressed=True), "suppressed"),
    ok("suppressed", "acknowledge", NONE, L(acked=True, suppressed=True), "suppressed"),
    ok("suppressed", "shelve", SHELVE, L(shelved_until=LATER, suppressed=True), "suppressed"),
    no("suppressed", "unshelve", NONE, UNSHELVED),
    no("suppressed", "expire_shelve", {"now": LATER}, UNSHELVED),
    no("suppressed", "suppress", NONE, "already suppressed"),
    ok("suppressed", "unsuppress", NONE, L(), "unack"),
    ok(
        "suppressed",
        "remove_from_service",
        NONE,
        L(suppressed=True, out_of_service=True),
        "out_of_service",
    ),
    no("suppressed", "return_to_service", NONE, "already in service"),
    ok("suppressed", "comment", NOTED, L(suppressed=True), "suppressed"),
    ok("suppressed", "verify", NOTED, L(suppressed=True, disposal="verified"), "suppressed"),
    no("suppressed", "dispose", NOTED, "disposal is received, not verified"),
    no("suppressed", "close", NOTED, "disposal is received, not disposed"),
    ok("suppressed", "overdue", NONE, L(suppressed=True, overdue=True), "suppressed"),
    ok("suppressed_ack", "escalate", NONE, L(suppressed=True), "suppressed"),
    ok("suppressed_ack", "unsuppress", NONE, L(), "unack"),
    # -- out_of_service (active, unacknowledged) ---------------------------------------------
    ok("out_of_service", "raise", NONE, L(out_of_service=True), "out_of_service"),
    ok("out_of_service", "escalate", NONE, L(out_of_service=True), "out_of_service"),
    ok("out_of_service", "deescalate", NONE, L(out_of_service=True), "out_of_service"),
    ok(
        "out_of_service",
        "clear",
        NONE,
        L(active=False, out_of_service=True),
        "out_of_service",
    ),
    no("out_of_service", "acknowledge", NONE, OOS),
    no("out_of_service", "shelve", SHELVE, OOS),
    no("out_of_service", "shelve", {"now": NOW}, OOS, tag="service-checked-first"),
    no("out_of_service", "unshelve", NONE, UNSHELVED),
    no("out_of_service", "expire_shelve", {"now": LATER}, UNSHELVED),
    ok(
        "out_of_service",
        "suppress",
        NONE,
        L(suppressed=True, out_of_service=True),
        "out_of_service",
    ),
    no("out_of_service", "unsuppress", NONE, "already not suppressed"),
    no("out_of_service", "remove_from_service", NONE, "already out of service"),
    ok("out_of_service", "return_to_service", NONE, L(), "unack"),
    ok("out_of_service", "comment", NOTED, L(out_of_service=True), "out_of_service"),
    ok(
        "out_of_service",
        "verify",
        NOTED,
        L(out_of_service=True, disposal="verified"),
        "out_of_service",
    ),
    no("out_of_service", "dispose", NOTED, "disposal is received, not verified"),
    no("out_of_service", "close", NOTED, "disposal is received, not disposed"),
    ok(
        "out_of_service",
        "overdue",
        NONE,
        L(out_of_service=True, overdue=True),
        "out_of_service",
    ),
    no("out_of_service_ack", "acknowledge", NONE, ACKED),
    ok("out_of_service_ack", "escalate", NONE, L(out_of_service=True), "out_of_service"),
    ok("out_of_service_ack", "return_to_service", NONE, L(), "unack"),
    # -- shelve: an end in the future and a reason -------------------------------------------
    no("unack", "shelve", {"now": NOW, "note": "x"}, "end in the future", tag="no-end"),
    no("unack", "shelve", {"now": NOW, "until": NOW, "note": "x"}, "end in the future", tag="now"),
    no(
        "unack",
        "shelve",
        {"now": NOW, "until": NOW - 1, "note": "x"},
        "end in the future",
        tag="past",
    ),
    ok(
        "unack",
        "shelve",
        {"now": NOW, "until": NOW + 1, "note": "x"},
        L(shelved_until=NOW + 1),
        "shelved",
        tag="1ms",
    ),
    no("unack", "shelve", {"now": NOW, "until": LATER}, "needs a reason", tag="no-reason"),
    no(
        "unack",
        "shelve",
        {"now": NOW, "until": LATER, "note": " \t\n"},
        "needs a reason",
        tag="blank",
    ),
    no(
        "shelved",
        "shelve",
        {"now": NOW, "until": NOW, "note": "x"},
        "end in the future",
        tag="bad-extend",
    ),
    # -- comment ------------------------------------------------------------------------------
    no("unack", "comment", NONE, "needs text", tag="empty"),
    no("unack", "comment", {"note": "   "}, "needs text", tag="blank"),
    ok("normal_closed", "comment", NOTED, STARTS["normal_closed"], "normal", tag="after-close"),
    # -- disposal: received -> verified -> disposed -> closed, each with a note ---------------
    no("unack", "verify", NONE, "verify needs a note", tag="empty"),
    no("unack", "verify", {"note": "\t"}, "verify needs a note", tag="blank"),
    no("ack_verified", "verify", NOTED, "disposal is verified, not received", tag="twice"),
    no("ack_verified", "dispose", {"note": " "}, "dispose needs a note", tag="blank"),
    ok("ack_verified", "dispose", NOTED, L(acked=True, disposal="disposed"), "ack"),
    no("ack_verified", "close", NOTED, "disposal is verified, not disposed", tag="skip"),
    no("ack_disposed", "close", NOTED, "still active", tag="active"),
    no("ack_disposed", "close", {"note": ""}, "close needs a note", tag="empty"),
    ok(
        "rtn_unack_disposed",
        "close",
        NOTED,
        L(active=False, disposal="closed"),
        "rtn_unack",
    ),
    ok(
        "normal_disposed_overdue",
        "close",
        NOTED,
        L(active=False, acked=True, disposal="closed"),
        "normal",
        tag="finishes",
    ),
    ok(
        "normal_verified_overdue",
        "dispose",
        NOTED,
        L(active=False, acked=True, disposal="disposed"),
        "normal",
        tag="overdue-reset",
    ),
    ok("unack_overdue", "verify", NOTED, L(disposal="verified"), "unack", tag="overdue-reset"),
    no("normal_closed", "verify", NOTED, "disposal is closed, not received"),
    no("normal_closed", "dispose", NOTED, "disposal is closed, not verified"),
    no("normal_closed", "close", NOTED, "disposal is closed, not disposed"),
    # -- overdue: once per step, never after closing -----------------------------------------
    no("unack_overdue", "overdue", NONE, "not overdue", tag="twice"),
    no("normal_closed", "overdue", NONE, "not overdue", tag="closed"),
    # -- raise: a new activation keeps only the shelve, suppression and service state ---------
    ok("normal_closed", "raise", NONE, L(), "unack", tag="after-close"),
    ok("unack_overdue", "raise", NONE, L(), "unack"),
    ok(
        "layered",
        "raise",
        NONE,
        L(shelved_until=UNTIL, suppressed=True, out_of_service=True),
        "out_of_service",
    ),
    ok(
        "layered",
        "unsuppress",
        NONE,
        L(
            acked=True,
            shelved_until=UNTIL,
            out_of_service=True,
            disposal="verified",
            overdue=True,
        ),
        "out_of_service",
    ),
    ok(
        "layered",
        "return_to_service",
        NONE,
        L(acked=True, shelved_until=UNTIL, suppressed=True, disposal="verified", overdue=True),
        "suppressed",
    ),
    no("layered", "shelve", SHELVE, OOS),
    # -- the centre's review: disposed -> review (an enterprise's close of a serious alarm) ->
    # closed (approved) or verified (returned: disposed of and closed again) ----------------
    no("unack", "submit", NOTED, "disposal is received, not disposed"),
    no("unack", "approve", NOTED, "disposal is received, not review"),
    no("unack", "return", NOTED, "disposal is received, not review"),
    no("ack", "submit", NOTED, "disposal is received, not disposed"),
    no("ack", "approve", NOTED, "disposal is received, not review"),
    no("ack", "return", NOTED, "disposal is received, not review"),
    no("rtn_unack", "submit", NOTED, "disposal is received, not disposed"),
    no("rtn_unack", "approve", NOTED, "disposal is received, not review"),
    no("rtn_unack", "return", NOTED, "disposal is received, not review"),
    no("normal", "submit", NOTED, "disposal is received, not disposed"),
    no("normal", "approve", NOTED, "disposal is received, not review"),
    no("normal", "return", NOTED, "disposal is received, not review"),
    no("shelved", "submit", NOTED, "disposal is received, not disposed"),
    no("shelved", "approve", NOTED, "disposal is received, not review"),
    no("shelved", "return", NOTED, "disposal is received, not review"),
    no("suppressed", "submit", NOTED, "disposal is received, not disposed"),
    no("suppressed", "approve", NOTED, "disposal is received, not review"),
    no("suppressed", "return", NOTED, "disposal is received, not review"),
    no("out_of_service", "submit", NOTED, "disposal is received, not disposed"),
    no("out_of_service", "approve", NOTED, "disposal is received, not review"),
    no("out_of_service", "return", NOTED, "disposal is received, not review"),
    ok(
        "normal_disposed",
        "submit",
        NOTED,
        L(active=False, acked=True, disposal="review"),
        "normal",
    ),
    ok(
        "normal_disposed_overdue",
        "submit",
        NOTED,
        L(active=False, acked=True, disposal="review"),
        "normal",
        tag="overdue-reset",
    ),
    ok("rtn_unack_disposed", "submit", NOTED, L(active=False, disposal="review"), "rtn_unack"),
    no("ack_disposed", "submit", NOTED, "cannot submit: the alarm is still active"),
    no("normal_disposed", "submit", NONE, "submit needs a note", tag="empty"),
    no("normal_disposed", "approve", NOTED, "disposal is disposed, not review"),
    no("normal_disposed", "return", NOTED, "disposal is disposed, not review"),
    ok(
        "normal_review",
        "approve",
        NOTED,
        L(active=False, acked=True, disposal="closed"),
        "normal",
    ),
    ok(
        "normal_review_overdue",
        "approve",
        NOTED,
        L(active=False, acked=True, disposal="closed"),
        "normal",
        tag="overdue-reset",
    ),
    ok("rtn_unack_review", "approve", NOTED, L(active=False, disposal="closed"), "rtn_unack"),
    no("normal_review", "approve", {"note": " "}, "approve needs a note", tag="blank"),
    ok(
        "normal_review",
        "return",
        NOTED,
        L(active=False, acked=True, disposal="verified"),
        "normal",
    ),
    ok(
        "normal_review_overdue",
        "return",
        NOTED,
        L(active=False, acked=True, disposal="verified"),
        "normal",
        tag="overdue-reset",
    ),
    no("normal_review", "return", NONE, "return needs a note", tag="empty"),
    no("normal_review", "return", {"note": "\t"}, "return needs a note", tag="blank"),
    no("normal_review", "close", NOTED, "awaits the monitoring centre's review"),
    no("normal_review", "submit", NOTED, "awaits the monitoring centre's review"),
    no("normal_review", "verify", NOTED, "disposal is review, not received"),
    no("normal_review", "dispose", NOTED, "disposal is review, not verified"),
    ok(
        "normal_review",
        "overdue",
        NONE,
        L(active=False, acked=True, disposal="review", overdue=True),
        "normal",
    ),
    no("normal_review_overdue", "overdue", NONE, "not overdue"),
    ok("normal_review", "comment", NOTED, STARTS["normal_review"], "normal"),
    no("normal_closed", "submit", NOTED, "disposal is closed, not disposed"),
    no("normal_closed", "approve", NOTED, "disposal is closed, not review"),
    no("normal_closed", "return", NOTED, "disposal is closed, not review"),
    # -- the supervising centre's acknowledgement, apart from the site's ----------------------
    # it sets `centre_acked` only: the site's ISA state (and its repeats) stay the enterprise's
    ok("unack", "centre_acknowledge", NONE, L(centre_acked=True), "unack"),
    ok("ack", "centre_acknowledge", NONE, L(acked=True, centre_acked=True), "ack"),
    ok("rtn_unack", "centre_acknowledge", NONE, L(active=False, centre_acked=True), "rtn_unack"),
    ok(
        "normal",
        "centre_acknowledge",
        NONE,
        L(active=False, acked=True, centre_acked=True),
        "normal",
    ),
    ok("shelved", "centre_acknowledge", NONE, L(shelved_until=UNTIL, centre_acked=True), "shelved"),
    ok(
        "suppressed",
        "centre_acknowledge",
        NONE,
        L(suppressed=True, centre_acked=True),
        "suppressed",
    ),
    no("out_of_service", "centre_acknowledge", NONE, OOS),
    no("centre_acked", "centre_acknowledge", NONE, "already acknowledged by the centre"),
    # the site's acknowledgement is the site's alone, whatever the centre did
    ok("centre_acked", "acknowledge", NONE, L(acked=True, centre_acked=True), "ack"),
    # a raise, an escalation and a re-annunciation ask both for a new acknowledgement
    ok("both_acked", "raise", NONE, L(), "unack", tag="both"),
    ok("both_acked", "escalate", NONE, L(), "unack", tag="both"),
    ok("both_acked", "deescalate", NONE, L(acked=True, centre_acked=True), "ack", tag="both"),
    ok(
        "both_acked",
        "clear",
        NONE,
        L(active=False, acked=True, centre_acked=True),
        "normal",
        tag="both",
    ),
    ok("shelved_both", "unshelve", NONE, L(), "unack", tag="both"),
    ok(
        "shelved_both_rtn",
        "unshelve",
        NONE,
        L(active=False, acked=True, centre_acked=True),
        "normal",
        tag="both",
    ),
    # -- not an action ------------------------------------------------------------------------
    no("unack", "reset", NONE, "unknown action 'reset'"),
    no("unack", "", NONE, "unknown action ''", tag="empty"),
]


@pytest.mark.parametrize(("start", "action", "kwargs", "expected", "isa"), TABLE)
def test_step(
    start: Lifecycle,
    action: str,
    kwargs: dict[str, Any],
    expected: Lifecycle | str,
    isa: str | None,
) -> None:
    if isinstance(expected, str):
        with pytest.raises(TransitionError, match=re.escape(expected)):
            step(start, cast(Action, action), **kwargs)
        return
    after = step(start, cast(Action, action), **kwargs)
    assert after == expected
    assert isa_state(after) == isa
    assert after.state == isa


def test_the_table_covers_every_action_from_every_isa_state() -> None:
    ids = [row.id for row in TABLE]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    covered = {tuple(str(i).split("/")[:2]) for i in ids}
    missing = [(s, a) for s in ISA_STATES for a in ACTIONS if (s, a) not in covered]
    assert missing == []
    # the first seven starts are in the ISA state they are named after
    for name in ISA_STATES:
        assert isa_state(STARTS[name]) == name


def test_operator_actions_are_actions() -> None:
    assert set(OPERATOR_ACTIONS) <= set(ACTIONS)


# -- properties -------------------------------------------------------------------------------

NOTES = st.one_of(
    st.sampled_from(["ok", "  why  ", "已核实", "", " ", "\t\n", "\u3000"]),
    st.text(max_size=6),
)
Move = tuple[str, int, int | None, str]
# an action, how far the clock moves before it (ms), the shelve's end relative to the clock
# (None, in the past, now, or the future) and the note
MOVES = st.tuples(
    st.sampled_from(ACTIONS),
    st.integers(0, 3_000),
    st.one_of(st.none(), st.integers(-2_000, 5_000)),
    NOTES,
)


@st.composite
def runs(draw: st.DrawFn) -> list[Move]:
    """Random moves with a way to the end woven in (acknowledge anywhere; verify, dispose, clear
    and close in order), so that runs reach a closed disposal and go on from there."""
    moves = draw(st.lists(MOVES, max_size=30))
    moves.insert(draw(st.integers(0, len(moves))), ("acknowledge", 0, None, ""))
    at = 0
    for action in ("verify", "dispose", "clear", "close"):
        at = draw(st.integers(at, len(moves)))
        moves.insert(at, (action, draw(st.integers(0, 3_000)), None, "done"))
        at += 1
    return moves


LIFECYCLES = st.builds(
    Lifecycle,
    active=st.booleans(),
    acked=st.booleans(),
    shelved_until=st.one_of(st.none(), st.integers(-(2**63), 2**63)),
    suppressed=st.booleans(),
    out_of_service=st.booleans(),
    disposal=st.sampled_from(DISPOSAL_STEPS),
    overdue=st.booleans(),
    centre_acked=st.booleans(),
)


def reachable(s: Lifecycle) -> bool:
    """Whether `s` can come out of a run from `Lifecycle()`: a closed disposal is never active
    or overdue, one under review never active (only a returned alarm is closed or submitted).
    (Every other combination of the fields can.)"""
    if s.disposal == "review":
        return not s.active
    return s.disposal != "closed" or not (s.active or s.overdue)


# each disposal step: (from, to), written from the brief (審核销号: a return is disposed of again)
STEPS = {
    "verify": ("received", "verified"),
    "dispose": ("verified", "disposed"),
    "close": ("disposed", "closed"),
    "submit": ("disposed", "review"),
    "approve": ("review", "closed"),
    "return": ("review", "verified"),
}


def check_step(before: Lifecycle, action: str, after: Lifecycle) -> None:
    """The invariants of one allowed step."""
    assert isa_state(after) in ISA_STATES
    assert after.state == isa_state(after)
    assert after.disposal in DISPOSAL_STEPS
    if after.disposal == "review":
        assert not after.active  # only a returned alarm is submitted for review
    if after.disposal == "closed":
        # only a returned alarm closes, and only a new activation (`raise`) makes it active
        assert not after.active
        assert not after.overdue
    if after.finished:
        assert not after.active
        assert after.acked
        assert after.disposal == "closed"
    if action == "acknowledge":
        assert not before.out_of_service
        assert after.acked
    if action == "centre_acknowledge":
        assert not before.out_of_service
        assert after.centre_acked
        assert after.acked == before.acked  # the site's stays the site's
    if action == "escalate":
        assert not after.acked
        assert not after.centre_acked
    if action == "raise":
        # a new activation: active, unacknowledged, disposal from the start; only the
        # operator's and the configuration's masks carry over
        assert after == Lifecycle(
            shelved_until=before.shelved_until,
            suppressed=before.suppressed,
            out_of_service=before.out_of_service,
        )
        return
    if action in STEPS:
        assert (before.disposal, after.disposal) == STEPS[action]
        assert not after.overdue
    else:
        assert after.disposal == before.disposal
    if before.disposal == "closed":
        assert after.disposal == "closed"


@settings(max_examples=100)
@given(runs())
def test_random_runs_keep_the_invariants(moves: list[Move]) -> None:
    s = Lifecycle()
    now = 0
    for action, advance, ahead, note in moves:
        now += advance
        until = None if ahead is None else now + ahead
        try:
            after = step(s, cast(Action, action), now=now, until=until, note=note)
        except TransitionError:
            # refused, and nothing else escapes; an acknowledgement only for its two reasons
            if action == "acknowledge":
                assert s.acked or s.out_of_service
            if action == "centre_acknowledge":
                assert s.centre_acked or s.out_of_service
            continue
        if action in ("shelve", "comment", *STEPS):
            assert note.strip()
        if action == "shelve":
            assert until is not None
            assert until > now
        check_step(s, action, after)
        assert reachable(after)
        s = after


@settings(max_examples=100)
@given(
    LIFECYCLES,
    st.one_of(st.sampled_from(ACTIONS), st.text(max_size=12)),
    st.integers(-(2**63), 2**63),
    st.one_of(st.none(), st.integers(-(2**63), 2**63)),
    st.text(max_size=12),
)
def test_any_input_steps_or_raises_transition_error(
    s: Lifecycle, action: str, now: int, until: int | None, note: str
) -> None:
    try:
        after = step(s, cast(Action, action), now=now, until=until, note=note)
    except TransitionError as exc:
        assert str(exc)
        return
    assert action in ACTIONS
    assert isa_state(after) in ISA_STATES
    if reachable(s):
        check_step(s, action, after)


@settings(max_examples=30)
@given(
    LIFECYCLES,
    st.sampled_from(
        ["shelve", "comment", "verify", "dispose", "close", "submit", "approve", "return"]
    ),
    st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=5),
)
def test_a_blank_note_is_refused(s: Lifecycle, action: str, note: str) -> None:
    with pytest.raises(TransitionError):
        step(s, cast(Action, action), now=0, until=1, note=note)


@settings(max_examples=30)
@given(LIFECYCLES, st.integers(-(2**40), 2**40), st.integers(0, 2**40), st.text(max_size=6))
def test_a_shelve_that_ends_now_or_before_is_refused(
    s: Lifecycle, now: int, back: int, note: str
) -> None:
    with pytest.raises(TransitionError):
        step(s, "shelve", now=now, until=now - back, note=note)


@settings(max_examples=30)
@given(LIFECYCLES)
def test_an_out_of_service_alarm_cannot_be_acknowledged(s: Lifecycle) -> None:
    with pytest.raises(TransitionError):
        step(replace(s, out_of_service=True), "acknowledge")


@settings(max_examples=30)
@given(LIFECYCLES, st.integers(-(2**40), 2**40), st.integers(-5, 5), NOTES)
def test_a_closed_disposal_never_changes_but_by_a_new_activation(
    s: Lifecycle, now: int, ahead: int, note: str
) -> None:
    closed = replace(s, active=False, disposal="closed", overdue=False)
    for action in ACTIONS:
        if action == "raise":  # a new activation, with a disposal of its own
            continue
        try:
            after = step(closed, cast(Action, action), now=now, until=now + ahead, note=note)
        except TransitionError:
            continue
        assert after.disposal == "closed"
        assert not after.active
        assert after.finished == after.acked


# who may take which disposal step, by standing: (step asked, centre key, the alarm reached a
# reviewed tier) -> the action it is, or None: refused (NotReviewerError, 403 over HTTP)
STANDING = [
    ("close", False, True, "submit"),  # an enterprise closes a red alarm: to the centre's review
    ("close", False, False, "close"),  # an enterprise closes a yellow one itself
    ("close", True, True, "close"),  # the centre's close is its own review
    ("close", True, False, "close"),
    ("approve", True, True, "approve"),
    ("approve", True, False, "approve"),  # (refused by the state: it is not under review)
    ("approve", False, True, None),  # the enterprise never approves its own
    ("approve", False, False, None),
    ("return", True, True, "return"),
    ("return", True, False, "return"),
    ("return", False, True, None),
    ("return", False, False, None),
    ("verify", False, True, "verify"),  # the other steps are anyone's with the disposal action
    ("dispose", False, True, "dispose"),
    ("verify", True, False, "verify"),
    ("dispose", True, True, "dispose"),
]


@pytest.mark.parametrize(
    ("asked", "centre", "review", "expected"),
    STANDING,
    ids=[
        f"{a}/{'centre' if c else 'enterprise'}/{'review' if r else 'plain'}"
        for a, c, r, _ in STANDING
    ],
)
def test_disposal_action_by_standing(
    asked: str, centre: bool, review: bool, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(NotReviewerError, match="monitoring centre's"):
            disposal_action(cast(Action, asked), centre=centre, review=review)
        return
    assert disposal_action(cast(Action, asked), centre=centre, review=review) == expected


def test_a_review_runs_submit_return_and_submit_again_to_approval() -> None:
    """The enterprise closes (submitted), the centre returns it, the enterprise disposes of it
    and closes it again, the centre approves: each step in order, none skipped."""
    s = Lifecycle(active=False, acked=True, disposal="disposed")
    for action, disposal in (
        ("submit", "review"),
        ("return", "verified"),
        ("dispose", "disposed"),
        ("submit", "review"),
        ("approve", "closed"),
    ):
        s = step(s, cast(Action, action), note="n")
        assert s.disposal == disposal
    assert s.finished
