"""What a person writes on an alarm (a note, a reason, a comment), as the API takes it.

Invisible format characters (Unicode category Cf: zero-width spaces and joiners, the byte-order
mark, direction overrides that make a CSV cell or a journal line read otherwise than it is) are
taken out, and the text is stripped of surrounding white space, before any check that it is
there: a red alarm's note of one U+200B passed as given (helper-133), a journal line of nothing.
A control character other than tab and new line is refused (422): a NUL went into the CSV."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["NOTE_MAX", "Note", "RequiredNote", "clean_note"]

NOTE_MAX = 2000


def clean_note(text: str) -> str:
    """`text` without format characters and surrounding white space; ValueError for a control
    character other than tab, new line and carriage return."""
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in "\t\n\r":
            raise ValueError(f"a note holds no control characters (U+{ord(ch):04X})")
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()


def _required(text: str) -> str:
    cleaned = clean_note(text)
    if not cleaned:
        raise ValueError("a note is required: words, not only spaces or invisible characters")
    return cleaned


Note = Annotated[str, Field(max_length=NOTE_MAX), AfterValidator(clean_note)]
RequiredNote = Annotated[str, Field(min_length=1, max_length=NOTE_MAX), AfterValidator(_required)]
