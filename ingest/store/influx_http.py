"""InfluxDB HTTP answers mapped to `StoreError`, and InfluxQL text. Pure apart from httpx types.

Status mapping (the same for ``/write``, ``/api/v2/write`` and ``/query``):

- 2xx: success.
- 400 or 422 whose message says ``partial write``: the server kept the valid lines and refused the
  rest; `PartialWriteError` with the dropped count and a sample of the refused lines. InfluxDB 1.x
  answers ``partial write: field type conflict: ... dropped=N`` (type conflicts) and ``partial
  write: unable to parse '<line>': <why> dropped=0`` (a line it cannot parse is not counted in
  ``dropped``, so it is counted here); 2.x answers 422 for the same cases.
- 408, 429 and 5xx: retryable (the server is busy, restarting or overloaded).
- 401, 403 and 404: `StoreUnavailableError`, retryable: a wrong password or token (rotated under
  the hub), a user without the right, a database or bucket that is gone. The data are fine and
  every write would be refused alike until an operator fixes it: an outage, not dead letters
  (they were: valid methane readings kept unjudged as dead letters after a password change,
  helper-150).
- a partial write refused for a limit of the server (``max-series-per-database limit exceeded``,
  ``max-values-per-tag limit exceeded``): `StoreUnavailableError` too (``influxdb_limit``): new
  sensors' readings would be refused until an operator raises the limit, so the whole write is
  held (spooled) and written again then (the lines kept are written twice: harmless).
- 413 (the body beyond the server's ``max-body-size``): `StoreUnavailableError`
  (``influxdb_body_size``), the server's setting.
- any other 4xx: permanent (``StoreError(retryable=False)``): a bad request.

Timeouts and transport errors (refused connection, reset, DNS) are retryable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from ingest.store.base import PartialWriteError, StoreError, StoreUnavailableError

__all__ = [
    "check_status",
    "literal",
    "parse_json",
    "select",
    "span",
    "transport_errors",
]

_RETRYABLE_4XX = frozenset({408, 429})
# refusals of the server's set-up, not of the data: an outage until an operator fixes it
_UNAVAILABLE = {
    401: "influxdb_auth",
    403: "influxdb_auth",
    404: "influxdb_not_found",
    413: "influxdb_body_size",
}
_PARTIAL_STATUS = frozenset({400, 422})
_DROPPED = re.compile(r"dropped=(\d+)")
_UNPARSABLE = re.compile(r"unable to parse '(.*?)': ", re.DOTALL)
_CONFLICT = re.compile(r'input field \\?"(.+?)\\?" on measurement \\?"(.+?)\\?"')
_MIN_NS = -9223372036854775806
_MAX_NS = 9223372036854775806
SAMPLE_LINES = 5


def literal(text: str) -> str:
    """An InfluxQL string literal."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"newline in query literal {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select(fields: Sequence[str], source: str, where: str, tail: str = "") -> str:
    """An InfluxQL SELECT. `source` is ours (a quoted measurement, maybe with its retention
    policy); every value in `where` went through `literal` or is a number, and string values come
    from the registry, never from a request."""
    names = ", ".join(f'"{f}"' if f.isidentifier() else f for f in fields)
    return f"SELECT {names} FROM {source} WHERE {where} {tail}".rstrip()  # noqa: S608


def span(start_ms: int, end_ms: int) -> str:
    return f"time >= {_time_ns(start_ms)} AND time < {_time_ns(end_ms)}"


def _time_ns(ms: int) -> int:
    return max(_MIN_NS, min(_MAX_NS, int(ms) * 1_000_000))


def _parse_int(text: str) -> int | float:
    # InfluxDB writes -0.0 as "-0"; keep the sign.
    return -0.0 if text == "-0" else int(text)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_int=_parse_int)
    except ValueError as exc:
        raise StoreError(
            f"influxdb {what}: not a JSON answer: {text[:200]!r}", retryable=False
        ) from exc


def server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):  # 1.x says "error", 2.x/3.x "message"
            if isinstance(body.get(key), str):
                return str(body[key])
    return resp.headers.get("X-Influxdb-Error") or resp.text.strip() or resp.reason_phrase


def refused_lines(body: bytes, reason: str) -> tuple[int, list[str]]:
    """(lines the server did not keep, a sample of them) from a partial-write message and the
    body that was sent."""
    unparsable = _UNPARSABLE.findall(reason)
    found = _DROPPED.search(reason)
    dropped = (int(found.group(1)) if found else 0) + len(unparsable)
    sample = [str(line) for line in unparsable[:SAMPLE_LINES]]
    conflict = _CONFLICT.search(reason)
    if conflict and len(sample) < SAMPLE_LINES:
        field, measurement = conflict.group(1), conflict.group(2)
        prefixes = (f"{measurement},".encode(), f"{measurement} ".encode())
        needle = f"{field}=".encode()
        for line in body.splitlines():
            if line.startswith(prefixes) and needle in line.split(b" ", 1)[-1]:
                sample.append(line.decode(errors="replace"))
                if len(sample) >= SAMPLE_LINES:
                    break
    if not found and not unparsable:  # no count in the message: at least the sample went
        dropped = max(1, len(sample))
    return dropped, sample


def check_status(resp: httpx.Response, what: str, body: bytes = b"") -> None:
    """Raise the `StoreError` an answer stands for (see the module docstring)."""
    if resp.is_success:
        return
    code = resp.status_code
    reason = server_message(resp)
    message = f"influxdb {what}: HTTP {code}: {reason}"
    if code in _PARTIAL_STATUS and "partial write" in reason:
        if "limit exceeded" in reason:  # the server's limit, not the lines' fault
            raise StoreUnavailableError(message, cause="influxdb_limit")
        dropped, sample = refused_lines(body, reason)
        raise PartialWriteError(message, dropped=dropped, reason=reason, sample=sample)
    if code in _UNAVAILABLE:
        raise StoreUnavailableError(message, cause=_UNAVAILABLE[code])
    raise StoreError(message, retryable=code >= 500 or code in _RETRYABLE_4XX)


@contextmanager
def transport_errors(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise StoreError(f"influxdb {what}: timed out ({url}): {exc!r}", retryable=True) from exc
    except httpx.TransportError as exc:
        raise StoreError(f"influxdb {what}: {url}: {exc!r}", retryable=True) from exc
