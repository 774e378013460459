"""The `--influx` URL of `hazardhub hub` (`hazardhub.cliargs`): why it is no InfluxDB URL
(`influx_url_problem`), the URL with the user and the password of the environment put in
(`influx_with_login`), and whether it carries a password itself; a password never in a message.
Split from `hazardhub.cliargs`, which names them as before; the code moved as it was.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["influx_password_in_url", "influx_url_problem", "influx_with_login"]


def _without_userinfo(text: str) -> str:
    """`text` with a `user:password@` it may carry masked, for a message."""
    head, at, tail = text.rpartition("@")
    if not at:
        return text
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}***@{tail}" if sep else f"***@{tail}"


def influx_url_problem(text: str) -> str | None:
    """Why `--influx` is no InfluxDB URL (an http:// or https:// URL with a host and, if any, a
    port number), or None. `127.0.0.1:8086` without its scheme was taken for an InfluxDB that
    does not answer: the hub spooled for ever, saying ready (helper-149)."""
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"--influx {_without_userinfo(text)}: not a URL ({exc})"
    if url.scheme not in ("http", "https") or not url.hostname:
        return (
            f"--influx {_without_userinfo(text)}: not an InfluxDB URL: give "
            "http://HOST:PORT or https://HOST:PORT (e.g. http://127.0.0.1:8086)"
        )
    if url.query or url.fragment:
        # `?u=...&p=...` (InfluxDB 1.x's query login) went into the log with every warning of
        # the store, and broke the paths the store adds to the URL
        shown = _without_userinfo(text.partition("?")[0].partition("#")[0])
        return (
            f"--influx {shown}?...: takes no query or fragment: give the user and password as "
            "http://USER:PASSWORD@HOST:PORT, or a token with --influx-token"
        )
    return None


def influx_with_login(text: str, user: str | None, password: str | None) -> str:
    """`--influx` with its user (from `--influx-user` or the URL's own `http://USER@HOST`) and
    the password of `$HAZARDHUB_INFLUX_PASSWORD` put in as the URL's `user:password`: a password
    in the URL on the command line is in the process list, readable by every local user
    (helper-163). Raises ValueError saying what to change."""
    url = urllib.parse.urlsplit(text)
    if user is not None and url.username is not None:
        raise ValueError("give the InfluxDB user once: in --influx-user or in the --influx URL")
    if password is None:
        if user is not None:
            raise ValueError("--influx-user: set the password in $HAZARDHUB_INFLUX_PASSWORD")
        return text
    if url.password is not None:
        raise ValueError(
            "the --influx URL has a password and $HAZARDHUB_INFLUX_PASSWORD is set: give it once, "
            "in the environment"
        )
    name = user if user is not None else url.username
    if not name:
        raise ValueError(
            "$HAZARDHUB_INFLUX_PASSWORD is set without a user: give --influx-user "
            "(or clear the variable)"
        )
    login = f"{urllib.parse.quote(name, safe='')}:{urllib.parse.quote(password, safe='')}"
    host = url.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(url._replace(netloc=f"{login}@{host}"))


def influx_password_in_url(text: str) -> bool:
    """Whether the `--influx` URL as given carries a password (said once at start)."""
    return urllib.parse.urlsplit(text).password is not None
