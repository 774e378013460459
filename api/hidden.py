"""What the API never shows back: a webhook's HMAC secret, the password of a URL's user info
(``http://user:password@host/``, sent as HTTP Basic authorization), the values of a URL's
query parameters that carry a credential (``access_token`` of a DingTalk robot, ``key`` of a
WeCom robot, ``token``, ``sign``, ``X-Amz-Signature`` ...: `SECRET_PARAMS`), and every path
segment or query value that looks like a token (`looks_like_token`: a Feishu or Lark robot's
``/open-apis/bot/v2/hook/<token>``, a Slack hook's ``/services/T../B../<token>``). All are shown
as ``********``, the host and the start of the path left as they are, for an operator to know
the receiver; a spec saved back with the mark keeps what is stored.

A masked URL keeps its stored secrets only when it is the stored URL with them masked, character
for character: a URL pointed elsewhere with the mark left in would otherwise send the stored
secrets to the new host. A masked HMAC secret is kept only for the receiver it was given with
(`same_receiver`: scheme, host, port and path), on every path that saves one (`keep_secret`).

The monitoring centre's receivers (its webhook URLs, its staff's e-mail addresses) are not an
enterprise's or a viewer's to read at all: `hide_receivers` shows them as `CENTRE_HIDDEN`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = [
    "CENTRE_HIDDEN",
    "HIDDEN",
    "SECRET_PARAMS",
    "hide_receivers",
    "hide_url",
    "keep_secret",
    "keep_url",
    "looks_like_token",
    "same_receiver",
    "url_hides_secret",
]

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


# what an enterprise's or a viewer's key reads for the receivers of the centre's objects
CENTRE_HIDDEN = "(监测中心的接收方 the monitoring centre's receiver)"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")


def looks_like_token(text: str) -> bool:
    """Whether a path segment or query value looks like a token: 16 or more of
    ``[A-Za-z0-9_-]`` with a digit, or with capitals and small letters both (a UUID, a robot's
    random key); a word such as ``notifications-receiver`` does not."""
    if not _TOKEN.fullmatch(text):
        return False
    return any(c.isdigit() for c in text) or (text.lower() != text and text.upper() != text)


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
    """`url` with the values of its secret query parameters and those that look like a token
    masked, and its query's values (all)."""
    base, hashmark, fragment = url.partition("#")
    head, mark, query = base.partition("?")
    if not mark:
        return url, []
    pairs, values = [], []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        values.append(value)
        if eq and value and (_secret_name(unquote(name)) or looks_like_token(unquote(value))):
            pairs.append(f"{name}={HIDDEN}")
        else:
            pairs.append(pair)
    return f"{head}?{'&'.join(pairs)}{hashmark}{fragment}", values


def _path_tokens(url: str) -> tuple[str, list[str]]:
    """`url` with the segments of its path that look like a token masked, and its segments."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, []
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    cut = min((i for i in (tail.find(c) for c in "?#") if i >= 0), default=len(tail))
    segments = tail[:cut].split("/")
    shown = [HIDDEN if looks_like_token(unquote(s)) else s for s in segments]
    return f"{scheme}://{authority}{'/'.join(shown)}{tail[cut:]}", segments


def hide_url(url: str) -> str:
    """`url` with the password of its user info, the values of its secret query parameters and
    its path segments and query values that look like a token shown as HIDDEN (unchanged
    without any)."""
    found = _userinfo(url)
    shown = url if found is None else found.head + HIDDEN + found.tail
    return _query_secrets(_path_tokens(shown)[0])[0]


def url_hides_secret(url: str) -> bool:
    """Whether `url` carries HIDDEN for a password, a path segment or a query value (it was
    read back from the API)."""
    found = _userinfo(url)
    return (
        (found is not None and found.password == HIDDEN)
        or HIDDEN in _path_tokens(url)[1]
        or HIDDEN in _query_secrets(url)[1]
    )


def keep_url(url: str, stored: object) -> str | None:
    """The URL to keep for `url` read back with its secrets hidden: `stored`, when `url` is
    `stored` with its secrets hidden; None when there is nothing to keep."""
    if isinstance(stored, str) and hide_url(stored) != stored and hide_url(stored) == url:
        return stored
    return None


def _receiver(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    return parts.scheme.lower(), parts.hostname or "", port, parts.path or "/"


def same_receiver(url: object, stored: object) -> bool:
    """Whether two webhook URLs reach the same receiver: scheme, host, port and path alike (the
    user info and the query may differ)."""
    if not isinstance(url, str) or not isinstance(stored, str):
        return False
    mine, theirs = _receiver(url), _receiver(stored)
    return mine is not None and mine == theirs


def keep_secret(url: object, stored_url: object, stored_secret: object) -> str | None:
    """The stored HMAC secret that a HIDDEN one sent back with `url` (its stored secrets kept
    already, `keep_url`) stands for; None when there is none to keep, or `url` is another
    receiver than the one the secret was given with: it would sign bodies for whoever holds
    the new URL, with a key they could never read."""
    if not isinstance(stored_secret, str) or not stored_secret:
        return None
    if (url is not None or stored_url is not None) and not same_receiver(url, stored_url):
        return None
    return stored_secret


def hide_receivers(spec: dict[str, Any], *, receivers: bool) -> dict[str, Any]:
    """A subscription's or an escalation policy's plain data with its channels' secrets hidden
    (the HMAC secret, the URL's secrets: `hide_url`); without `receivers` (the centre's object
    read by an enterprise's or a viewer's key) its webhook URLs and e-mail addresses are
    `CENTRE_HIDDEN` too. Every route that shows one shows it through this."""

    def hide(channel: Any) -> Any:
        if not isinstance(channel, dict):
            return channel
        out = dict(channel)
        if out.get("secret"):
            out["secret"] = HIDDEN
        if isinstance(out.get("url"), str):
            out["url"] = hide_url(out["url"]) if receivers else CENTRE_HIDDEN
        if not receivers and out.get("to"):
            out["to"] = [CENTRE_HIDDEN]
        return out

    data = dict(spec)
    if "channel" in data:
        data["channel"] = hide(data["channel"])
    if isinstance(data.get("steps"), list):
        data["steps"] = [
            {**st, "channel": hide(st.get("channel"))} if isinstance(st, dict) else st
            for st in data["steps"]
        ]
    return data
