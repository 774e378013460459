"""A peer's text in a log line (a JT/T 809 platform's, a mine's file's): escaped so that it
cannot start a line of its own, forge one (``\\n2026-12-02 09:00:00,000 INFO ... all clear``)
or hide what follows behind terminal control sequences."""

from __future__ import annotations

__all__ = ["shown"]


def shown(text: object) -> str:
    """`text` for a log line: control and other unprintable characters escaped (a peer's text
    cannot start a line of its own or hide what follows)."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)
