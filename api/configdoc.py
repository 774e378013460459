"""A configuration as plain data: the document the API exports and imports and the revisions
keep (`api.registrydb`), its digest, its secrets masked and put back, and its check as a
`HubConfig` with field errors (`ConfigRefusedError`). Split from `api.configadmin`, which
changes the running configuration with them and re-exports the public names.

Secrets (a webhook's HMAC key, the password and the tokens in its URL) never leave through the
API: an export shows them as ``********``, and an import that carries ``********`` keeps the
secret the running configuration has at the same place.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from api.hidden import HIDDEN, hide_url, keep_secret, keep_url, url_hides_secret
from telemetry.config import HubConfig
from telemetry.errors import ConfigError

__all__ = [
    "MAX_ERRORS",
    "ConfigRefusedError",
    "config_errors",
    "digest_of",
    "document",
    "document_digest",
    "mask",
    "unmask",
    "validate",
]

_SECRET_KEYS = frozenset({"secret"})
# a webhook's: the password of its user info and its query's tokens are secrets (api.hidden)
_URL_KEYS = frozenset({"url"})

MAX_ERRORS = 100  # field errors told at most: a 1 MiB list of wrong items has 500,000


class ConfigRefusedError(Exception):
    """A configuration that does not check out; `errors` are field errors (loc, msg, type), the
    first MAX_ERRORS of them and then how many more there were."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        if len(errors) > MAX_ERRORS:
            more = len(errors) - MAX_ERRORS
            errors = [
                *errors[:MAX_ERRORS],
                {"loc": ["body"], "msg": f"and {more} more errors", "type": "too_many_errors"},
            ]
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def document(config: HubConfig) -> dict[str, Any]:
    """The configuration as plain data, as its file or request gave it (unset fields left out)."""
    data: dict[str, Any] = config.model_dump(mode="json", exclude_unset=True)
    return data


def digest_of(doc: dict[str, Any]) -> str:
    """A document's SHA-256 (keys sorted): which configuration file the hub last read."""
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def document_digest(config: HubConfig) -> str:
    return digest_of(document(config))


def _key(item: Any, i: int) -> Any:
    if isinstance(item, dict):
        for k in ("id", "name"):
            if isinstance(item.get(k), str):
                return item[k]
    return i


def _masked(key: str, value: Any) -> Any:
    if key in _SECRET_KEYS and value:
        return HIDDEN
    if key in _URL_KEYS and isinstance(value, str):
        return hide_url(value)
    return mask(value)


def mask(data: Any) -> Any:
    """A copy with every secret shown as HIDDEN (a URL's password and tokens too: `api.hidden`)."""
    if isinstance(data, dict):
        return {k: _masked(k, v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data


def _secrets(data: Any, path: tuple[Any, ...], out: dict[tuple[Any, ...], Any]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if k in _SECRET_KEYS or k in _URL_KEYS:
                out[(*path, k)] = v
            else:
                _secrets(v, (*path, k), out)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _secrets(v, (*path, _key(v, i)), out)


def unmask(data: Any, current: dict[str, Any]) -> Any:
    """`data` with each HIDDEN secret replaced by the running configuration's secret at the same
    place (lists matched by their items' id or name), and each URL with a HIDDEN secret by the
    running URL there when it is that URL. Raise ConfigRefusedError for a HIDDEN secret or
    password with nothing to keep, and for a HIDDEN secret beside a URL of another receiver
    than the running one (`api.hidden.keep_secret`, the rule of `/subscriptions` too)."""
    known: dict[tuple[Any, ...], Any] = {}
    _secrets(current, (), known)
    errors: list[dict[str, Any]] = []

    def refuse(loc: tuple[Any, ...], msg: str) -> None:
        errors.append({"loc": ["body", *loc], "msg": msg, "type": "value_error"})

    def walk(node: Any, path: tuple[Any, ...], loc: tuple[Any, ...]) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in _SECRET_KEYS and v == HIDDEN:
                    out[k] = v  # below, once the URL beside it is known
                elif k in _URL_KEYS and isinstance(v, str) and url_hides_secret(v):
                    url = keep_url(v, known.get((*path, k)))
                    if url is None:
                        refuse(
                            (*loc, k),
                            "a hidden password or token that is not the one of this URL here:"
                            " give it",
                        )
                    out[k] = url or v
                else:
                    out[k] = walk(v, (*path, k), (*loc, k))
            for k in _SECRET_KEYS:
                if out.get(k) != HIDDEN:
                    continue
                stored = known.get((*path, k))
                kept = keep_secret(out.get("url"), known.get((*path, "url")), stored)
                if kept is None:
                    refuse(
                        (*loc, k),
                        "a hidden secret with no secret to keep here: give it"
                        if not stored
                        else "a hidden secret stands only for the one stored with that same"
                        " URL: give the secret again for a new URL",
                    )
                out[k] = kept or ""
            return out
        if isinstance(node, list):
            return [walk(v, (*path, _key(v, i)), (*loc, i)) for i, v in enumerate(node)]
        return node

    result = walk(data, (), ())
    if errors:
        raise ConfigRefusedError(errors)
    return result


def config_errors(exc: ConfigError) -> list[dict[str, Any]]:
    """'source: a.b.0.c: message' lines as field errors."""
    out = []
    for line in str(exc).splitlines():
        parts = line.split(": ", 2)
        if len(parts) == 3 and " " not in parts[1]:
            loc = [int(p) if p.isdigit() else p for p in parts[1].split(".")]
            out.append({"loc": ["body", *loc], "msg": parts[2], "type": "config_error"})
        else:
            out.append({"loc": ["body"], "msg": line, "type": "config_error"})
    return out


def validate(data: Any) -> HubConfig:
    """Plain data as a `HubConfig`; ConfigRefusedError with field errors."""
    try:
        return HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigRefusedError(
            [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from exc
