"""What the API never shows back: a webhook's HMAC secret, and the password of a URL's user info
(``http://user:password@host/``, sent as HTTP Basic authorization). Both are shown as
``********``; a spec saved back with the mark keeps what is stored.

A masked URL keeps its stored password only when it is the stored URL with the password masked,
character for character: a URL pointed elsewhere with the mark left in would otherwise send the
stored password to the new host.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HIDDEN", "hide_url", "keep_url", "url_hides_password"]

HIDDEN = "*" * 8


class _UserInfo(NamedTuple):
    head: str  # "http://user:"
    password: str
    tail: str  # "@host:port/path?query"


def _userinfo(url: str) -> _UserInfo | None:
    """The URL around its password; None when it has none. The authority ends at the first
    ``/``, ``?`` or ``#`` and the user info at its last ``@``, as HTTP clients read it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return None
    return _UserInfo(f"{scheme}://{user}:", password, f"@{host}{rest[end:]}")


def hide_url(url: str) -> str:
    """`url` with the password of its user info shown as HIDDEN (unchanged without one)."""
    found = _userinfo(url)
    return url if found is None else found.head + HIDDEN + found.tail


def url_hides_password(url: str) -> bool:
    """Whether `url` carries HIDDEN for its password (it was read back from the API)."""
    found = _userinfo(url)
    return found is not None and found.password == HIDDEN


def keep_url(url: str, stored: object) -> str | None:
    """The URL to keep for `url` read back with its password hidden: `stored`, when `url` is
    `stored` with its password hidden; None when there is nothing to keep."""
    if isinstance(stored, str) and _userinfo(stored) is not None and hide_url(stored) == url:
        return stored
    return None
