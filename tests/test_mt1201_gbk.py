"""MT/T 1201 files in GB18030 (GBK, GB2312: many KJ systems' default): the same records as the
UTF-8 file of the same text; a file that does not decode names its line and byte offset and
what to set; a UTF-8 file at a mine set to gb18030 is refused, not read as other characters."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from telemetry.mt1201 import FileError, Header, ParsedFile, Reading, parse
from telemetry.mt1201text import TextError, decode
from telemetry.mt1201write import write

T0 = 1772323200000  # 2026-03-01 08:00:00 China time

SS_TEXT = """140211000001;北方一矿;AQ;安全监控系统;2026-03-01 08:00:10~
001A01;0001;甲烷;1301回风巷分站;0.42;%CH4;正常;2026-03-01 08:00:00~
001A02;0001;甲烷;1301综采工作面;-9999;%CH4;断线;2026-03-01 08:00:00~
||
"""


def test_a_gbk_file_gives_the_utf8_files_records() -> None:
    gbk = SS_TEXT.encode("gbk")
    parsed = parse(gbk, "SS", "gb18030")
    assert parsed == parse(SS_TEXT.encode("utf-8"), "SS")
    assert parsed == parse(gbk, "SS", "auto")
    assert parsed.records[1] == Reading(
        "001A02", "0001", "甲烷", "1301综采工作面", None, "%CH4", "断线", T0
    )


def test_a_gbk_file_at_a_utf8_mine_says_the_line_the_byte_and_what_to_set() -> None:
    gbk = SS_TEXT.encode("gbk")
    with pytest.raises(FileError) as caught:
        parse(gbk, "SS")
    said = str(caught.value)
    assert said.startswith("not UTF-8 (line 1, byte offset 13)")  # 北 after "140211000001;"
    assert "set the mine's encoding: gb18030" in said
    cause = caught.value.__cause__
    assert isinstance(cause, TextError) and (cause.line, cause.suggest) == (1, "gb18030")
    # the first bad byte on a later line
    late = b"140211000001;a;AQ;b;2026-03-01 08:00:10~\n001A01;0001;" + "甲烷".encode("gbk")
    with pytest.raises(TextError, match=r"line 2, byte offset 53\)"):
        decode(late + b"~||", "utf-8")


def test_a_utf8_file_at_a_gb18030_mine_is_refused_not_misread() -> None:
    utf8 = SS_TEXT.encode("utf-8")
    assert "安全监控系统".encode().decode("gb18030") == "瀹夊叏鐩戞帶绯荤粺"  # what it would be
    with pytest.raises(
        FileError,
        match=r"UTF-8, not GB18030 \(line 1, byte offset 13.*"
        r"set the mine's encoding: utf-8",
    ):
        parse(utf8, "SS", "gb18030")
    assert parse(utf8, "SS", "auto") == parse(utf8, "SS")
    ascii_only = b"140211000001;a;AQ;b;2026-03-01 08:00:10~\n||"
    assert parse(ascii_only, "SS", "gb18030") == parse(ascii_only, "SS")


def test_a_gbk_file_whose_bytes_are_utf8_too_is_refused_or_misread_under_auto() -> None:
    """一 (D2 BB) and 煤 (C3 BA) in GBK are valid UTF-8 (һ, ú): a file of so few Chinese
    characters is the one a mine set to gb18030 has refused, and auto reads wrong."""
    text = "140211000001;一;AQ;煤;2026-03-01 08:00:10~\n||"
    gbk = text.encode("gbk")
    with pytest.raises(FileError, match="UTF-8, not GB18030"):
        parse(gbk, "JC", "gb18030")
    assert parse(gbk, "JC", "auto").header.mine_name == "\u04bb"  # not 一: documented


def test_byte_order_marks_are_tolerated() -> None:
    assert parse(b"\xef\xbb\xbf" + SS_TEXT.encode(), "SS", "auto").header.mine_name == "北方一矿"
    marked = ("\ufeff" + SS_TEXT).encode("gb18030")  # GB18030's: 84 31 95 33
    assert parse(marked, "SS", "gb18030").header.mine_code == "140211000001"


def test_bytes_of_neither_encoding_say_so() -> None:
    with pytest.raises(TextError, match=r"not UTF-8 \(line 2, byte offset 3\) nor GB18030"):
        decode(b"ab\n\xff\xff~||", "utf-8")
    with pytest.raises(TextError, match=r"neither UTF-8 .* nor GB18030"):
        decode(b"ab\n\xff\xff~||", "auto")


def _outcome(data: bytes, kind: str, encoding: str) -> ParsedFile | str:
    try:
        return parse(data, kind, encoding)  # type: ignore[arg-type]
    except FileError as exc:
        return f"refused: {exc}"


def _is_utf8(data: bytes) -> bool:
    with contextlib.suppress(UnicodeDecodeError):
        return bool(data.decode("utf-8")) or True
    return False


# any text GB18030 encodes (every code point but the lone surrogates), in and around the
# format's separators and fields
_any = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8) | st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=3
)
_pieces = st.sampled_from(
    ["~", ";", "\n", "||", "-9999", "2026-03-01 08:00:00", "0.5", "140211000001", "甲烷", "断线"]
)
_texts = st.lists(_pieces | _any, max_size=40).map("".join)
_field = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=10
).filter(lambda s: not any(c in s for c in ";~|") and s == s.strip())
_file = st.builds(
    lambda head, rows: write(head, rows).decode("utf-8"),
    st.builds(Header, st.just("140211000001"), _field, _field, _field, st.just(T0)),
    st.lists(
        st.builds(
            Reading,
            _field.filter(bool),
            _field,
            _field,
            _field,
            st.just(0.5),
            _field,
            _field,
            st.just(T0),
        ),
        max_size=4,
    ),
)


@settings(max_examples=250, deadline=None)
@given(_texts | _file, st.sampled_from(["JC", "SS", "YC"]))
def test_the_gb18030_file_of_any_text_parses_as_its_utf8_file(text: str, kind: str) -> None:
    gb = text.encode("gb18030")
    utf8 = _outcome(text.encode("utf-8"), kind, "utf-8")
    if not gb.isascii() and _is_utf8(gb):  # UTF-8 too: refused at gb18030, not read as other text
        event("GB18030 bytes valid as UTF-8")
        said = _outcome(gb, kind, "gb18030")
        assert isinstance(said, str) and "set the mine's encoding: utf-8" in said
        return
    event("refused" if isinstance(utf8, str) else f"taken, {len(utf8.records)} records")
    assert _outcome(gb, kind, "gb18030") == utf8
    assert _outcome(gb, kind, "auto") == utf8
