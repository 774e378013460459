"""The configuration format's common ground: identifiers, alarm tiers and the base of its models
(pydantic v2, frozen, extra fields forbidden, no infinities or NaN)."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

__all__ = ["Frozen", "Ident", "Label", "Tier", "some"]

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Tier = Literal["blue", "yellow", "orange", "red"]


def _printable(text: str) -> str:
    """No control characters (C0, DEL, C1): a label goes into e-mail subjects, CSV cells, log
    lines and headers (helper-122: a NUL or ESC went raw into a Subject)."""
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError("a name, location or tag holds no control characters (line breaks ...)")
    return text


# a name, a location or a tag, for people: one line (a YAML folded `name: >` ends with a line
# break: stripped), at most 200 characters
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_printable)
]
_T = TypeVar("_T", bound=tuple[object, ...])


def some(items: _T, why: str) -> _T:
    """`items`, refused with `why` when empty: for a field validator, not Field(min_length=1).
    pydantic checks min_length on what is left after an item failed, adding "at least 1 item
    ... not 0" to every item's error; a validator runs only when every item is valid."""
    if not items:
        raise ValueError(why)
    return items


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
