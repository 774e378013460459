"""Text that cannot be written as UTF-8: a lone surrogate (U+D800 to U+DFFF), which JSON lets a
client write as an escape (`"\\ud800"`) and Python's JSON reader takes. pydantic refuses it in a
field of a given form (a length, a pattern: `string_unicode`, 422), but keeps it in a plain `str`
and anywhere under `Any`; written out later (the state database's JSON, an answer) it failed
with a 500 (helper-220: a subscription's name). A body of free-form JSON (`dict[str, Any]`) is
looked through with `not_utf8` and refused, naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic_core import PydanticCustomError

__all__ = ["NOT_UTF8", "not_utf8", "refuse_not_utf8"]

T = TypeVar("T")
NOT_UTF8 = "string_unicode"  # pydantic's own type for the same refusal


def _fine(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _said(part: object) -> str:
    """A part of a field's path as the answer may say it: a key that is itself bad escaped."""
    return str(part).encode("utf-8", "backslashreplace").decode("utf-8")


# a path as a linked list, (key, the parent's path): each step of the walk adds one pair, where
# a tuple of the whole path copied it, quadratic in a deep body's depth
_Link = tuple["str | int", "_Link"] | None


def _unwind(link: _Link) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    while link is not None:
        part, link = link
        parts.append(part)
    return tuple(reversed(parts))


def not_utf8(value: Any) -> tuple[str | int, ...] | None:
    """The path (keys, list indexes) of the first text in `value` (plain JSON data: dicts,
    lists, strings, numbers) that does not encode as UTF-8, a key or a value; None when all do.
    No recursion: a deep body does not reach Python's stack limit."""
    stack: list[tuple[_Link, Any]] = [(None, value)]
    while stack:
        link, node = stack.pop()
        if isinstance(node, str):
            if not _fine(node):
                return _unwind(link)
        elif isinstance(node, dict):
            for key, child in reversed(node.items()):
                if isinstance(key, str) and not _fine(key):
                    return _unwind((key, link))
                stack.append(((key, link), child))
        elif isinstance(node, list | tuple):
            stack.extend(((i, link), child) for i, child in reversed(list(enumerate(node))))
    return None


def refuse_not_utf8(value: T, name: str) -> T:
    """`value` (the field `name`), or a validation error naming the place of its first text
    that does not encode as UTF-8; for a pydantic `field_validator`."""
    path = not_utf8(value)
    if path is None:
        return value
    where = ".".join(_said(p) for p in (name, *path))
    raise PydanticCustomError(
        NOT_UTF8,
        "{where}: text that does not encode as UTF-8 (a lone surrogate, \\ud800 to \\udfff, "
        "written as a JSON escape): send the characters themselves",
        {"where": where},
    )
