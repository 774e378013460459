"""What the API never shows back: a webhook's HMAC secret, the password of a URL's user info
(``http://user:password@host/``, sent as HTTP Basic authorization), and the values of a URL's
query parameters that carry a credential (``access_token`` of a DingTalk robot, ``key`` of a
WeCom robot, ``token``, ``sign``, ``X-Amz-Signature`` ...: `SECRET_PARAMS`). All are shown as
``********``; a spec saved back with the mark keeps what is stored.

A masked URL keeps its stored secrets only when it is the stored URL with them masked, character
for character: a URL pointed elsewhere with the mark left in would otherwise send the stored
secrets to the new host.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote

__all__ = ["HIDDEN", "SECRET_PARAMS", "hide_url", "keep_url", "url_hides_secret"]

HIDDEN = "*" * 8
# query parameters whose value is a credential: those whose name (in lower case, `_` and `-`
# dropped) contains one of these; a harmless parameter caught by them is only shown masked
SECRET_PARAMS = (
    "token",
    "secret",
    "key",
    "sign",
    "sig",
    "pass",
    "pwd",
    "auth",
    "credential",
    "ticket",
)


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


def _secret_name(name: str) -> bool:
    bare = name.lower().replace("_", "").replace("-", "")
    return any(part in bare for part in SECRET_PARAMS)


def _query_secrets(url: str) -> tuple[str, list[str]]:
    """`url` with the values of its secret query parameters masked, and those values."""
    base, hashmark, fragment = url.partition("#")
    head, mark, query = base.partition("?")
    if not mark:
        return url, []
    pairs, found = [], []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _secret_name(unquote(name)):
            found.append(value)
            pairs.append(f"{name}={HIDDEN}")
        else:
            pairs.append(pair)
    return f"{head}?{'&'.join(pairs)}{hashmark}{fragment}", found


def hide_url(url: str) -> str:
    """`url` with the password of its user info and the values of its secret query parameters
    shown as HIDDEN (unchanged without any)."""
    found = _userinfo(url)
    shown = url if found is None else found.head + HIDDEN + found.tail
    return _query_secrets(shown)[0]


def url_hides_secret(url: str) -> bool:
    """Whether `url` carries HIDDEN for a password or a secret query value (it was read back
    from the API)."""
    found = _userinfo(url)
    return (found is not None and found.password == HIDDEN) or HIDDEN in _query_secrets(url)[1]


def keep_url(url: str, stored: object) -> str | None:
    """The URL to keep for `url` read back with its secrets hidden: `stored`, when `url` is
    `stored` with its secrets hidden; None when there is nothing to keep."""
    if isinstance(stored, str) and hide_url(stored) != stored and hide_url(stored) == url:
        return stored
    return None
