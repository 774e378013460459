"""Every readiness cause the hub itself gives (`api.readywatch`) has words in the dashboard's
banner, in Chinese and English: `state_db` and `future_time` were added to the hub without them,
and an enterprise's operator would have read a bare code (the centre's the hub's English reason)."""

from __future__ import annotations

import re
from pathlib import Path

from api.readywatch import _BY_START

HEALTH_JS = Path(__file__).resolve().parent.parent / "api" / "static" / "health.js"


def _block(text: str, lang: str) -> str:
    """The `STRINGS` table's part of one language: from its key to the other's, or the end."""
    zh, en = text.index("zh: {"), text.index("en: {")
    return text[zh:en] if lang == "zh" else text[en : text.index("};", en)]


def test_every_cause_the_hub_gives_is_worded_in_both_languages() -> None:
    text = HEALTH_JS.read_text(encoding="utf-8")
    for lang in ("zh", "en"):
        worded = set(re.findall(r"\bhh_c_([a-z0-9_]+):", _block(text, lang)))
        missing = sorted({code for _, code in _BY_START} - worded)
        assert missing == [], (lang, missing)
