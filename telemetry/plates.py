"""A vehicle's plate as compared wherever one is matched: a JT/T 808 terminal's registration, a
JT/T 809 platform's records and its answers to the centre's supervisions, against the
configuration's (pure)."""

from __future__ import annotations

import unicodedata

__all__ = ["plate_key"]

# what a plate is written with besides its characters: the middle dot of 苏A·D5678 (and its
# look-alikes), spaces, hyphens; a terminal's 0x0083 is usually 苏AD5678, and firmware may end
# its STRING with NULs
_PLATE_NOISE = dict.fromkeys(map(ord, "·•・‧.-_ \t\x00"), None)


def plate_key(plate: str) -> str:
    """A plate as terminals and configurations both write it: compatibility forms (full-width
    letters and digits), upper case, without separators."""
    return unicodedata.normalize("NFKC", plate).translate(_PLATE_NOISE).upper()
