"""The text of an MT/T 1201 file: its bytes decoded by the mine's encoding (docs/minefiles.md).

Pure. Many KJ systems write GBK (GB2312) by default; GB18030 is a superset of both, so
``gb18030`` reads them all. The encodings are not told apart from the bytes alone in general:

- ``utf-8`` (the default): UTF-8, a byte-order mark tolerated;
- ``gb18030``: GB18030 (GBK, GB2312); a file whose bytes hold non-ASCII text and are valid
  UTF-8 is refused: UTF-8 Chinese text almost always decodes as GB18030 too, into other
  characters (甲烷 as 鐢茬兎), so the mine's system switched to UTF-8 would otherwise be read
  wrong without a word, its status words unknown; a GBK file that is valid UTF-8 needs text of
  few Chinese characters, all of a few byte ranges;
- ``auto``: UTF-8 when the bytes are valid UTF-8, else GB18030 (that GBK file of few Chinese
  characters is then read as UTF-8, wrong; a file of both is read as GB18030, its UTF-8 part
  wrong).

A file that does not decode is refused whole: `TextError` says the line and byte offset and
what to set when the bytes read in the other encoding.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ENCODINGS", "Encoding", "TextError", "decode", "encode"]

Encoding = Literal["utf-8", "gb18030", "auto"]
ENCODINGS: tuple[Encoding, ...] = ("utf-8", "gb18030", "auto")
_NAMES = {"utf-8": "UTF-8", "gb18030": "GB18030"}


class TextError(ValueError):
    """The bytes do not decode: `line` (1-based) and `offset` (the byte's, 0-based, in the
    file) of the first that does not; `suggest`: the encoding the bytes read in, or None."""

    def __init__(self, message: str, line: int, offset: int, suggest: str | None) -> None:
        super().__init__(message)
        self.line = line
        self.offset = offset
        self.suggest = suggest


def _line(data: bytes, offset: int) -> int:
    # a line break is one byte in both encodings and never inside a GBK character
    return data.count(b"\n", 0, offset) + 1


def _where(data: bytes, offset: int) -> str:
    return f"line {_line(data, offset)}, byte offset {offset}"


def _fits(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def decode(data: bytes, encoding: Encoding) -> str:
    """The text of `data` in `encoding`, without its byte-order mark; TextError if the bytes
    are not of it."""
    if encoding == "gb18030" and not data.isascii() and _fits(data, "utf-8"):
        at = next(i for i, b in enumerate(data) if b >= 0x80)
        raise TextError(
            f"UTF-8, not GB18030 ({_where(data, at)}: the first byte beyond ASCII; the mine's "
            "encoding is gb18030): set the mine's encoding: utf-8 (docs/minefiles.md)",
            _line(data, at),
            at,
            "utf-8",
        )
    codec = "utf-8" if encoding == "auto" else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        first = exc
    else:
        return text.removeprefix("\ufeff")
    if encoding == "auto":
        try:
            return data.decode("gb18030").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise TextError(
                f"neither UTF-8 ({_where(data, first.start)}) nor GB18030 "
                f"({_where(data, exc.start)}) (the mine's encoding is auto)",
                _line(data, exc.start),
                exc.start,
                None,
            ) from None
    other = "gb18030" if encoding == "utf-8" else "utf-8"
    suggest = other if _fits(data, other) else None
    said = f"not {_NAMES[encoding]} ({_where(data, first.start)})"
    if suggest == "gb18030":  # GBK or GB2312 from a KJ system's default
        said += ": the file reads as GB18030 (GBK): set the mine's encoding: gb18030"
    elif suggest is not None:
        said += f": the file reads as UTF-8: set the mine's encoding: {suggest}"
    else:
        said += f" nor {_NAMES[other]}: damaged, or in another encoding"
    raise TextError(said + " (docs/minefiles.md)", _line(data, first.start), first.start, suggest)


def encode(text: str, encoding: Encoding) -> bytes:
    """`text` written in `encoding` (no byte-order mark); ``auto`` writes UTF-8."""
    return text.encode("utf-8" if encoding == "auto" else encoding)
