"""JT/T 809 body fields (pure): fixed-width GBK text, length checks, the body error."""

from __future__ import annotations

from telemetry.jt809.frame import Jt809Error

__all__ = ["BadBodyError", "UnsupportedError", "exact", "gbk", "strict_text", "text"]


class BadBodyError(Jt809Error):
    """A body (or sub-body) that cannot be read."""


class UnsupportedError(Jt809Error):
    """A message or sub-business type this side does not take."""


def text(raw: bytes) -> str:
    """A fixed-width GBK text field, without its padding (never raises)."""
    return raw.rstrip(b"\x00").decode("gb18030", errors="replace")


def strict_text(raw: bytes, what: str) -> str:
    """A GBK text field (read as GB 18030, its superset) up to its first 0x00 (the standard's
    fixed-width fields end there: "以\\0终结", the rest is padding); `BadBodyError` naming the
    field and the byte when it is no GBK."""
    cut = raw.split(b"\x00", 1)[0]
    try:
        return cut.decode("gb18030")
    except UnicodeDecodeError as exc:
        bad = cut[exc.start : exc.start + 2].hex()
        raise BadBodyError(f"{what} is not GBK text (byte {exc.start}: {bad})") from None


def gbk(value: str, width: int, what: str) -> bytes:
    b = value.encode("gb18030")
    if len(b) > width:
        raise ValueError(f"{what} {value!r} is longer than {width} bytes")
    return b + b"\x00" * (width - len(b))


def exact(body: bytes, n: int, what: str) -> None:
    if len(body) != n:
        raise BadBodyError(f"{what}: body of {len(body)} bytes, {n} expected")
