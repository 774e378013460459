"""API keys over HTTP: make one (shown once), list them, revoke one.

A caller manages only keys that see no more than it does and are not stronger: an admin of every
tenant manages every key; an admin limited to some tenants, the keys of any role of those tenants
(never a key of every tenant); an enterprise, the enterprise and viewer keys of its own tenants (a
wall display of its own, a script of its own).
Operators and viewers manage none. Keys of the configuration file are listed but can only be
removed there. A key made here expires (90 days unless asked otherwise, at most 10 years), never
after the key that made it, and works only while that key does (`api.auth.live_until`): a
short-lived or leaked key cannot buy a lasting one.
"""

from __future__ import annotations

import secrets
import unicodedata
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from alerts.desk import SYSTEM
from api.auth import Principal, hash_key
from api.context import WRITE, AppContext, Caller, Ctx, WriteGuard, not_found, require_writer
from api.registrydb import KeyRow, RegistryDB, RegistryDBError
from telemetry.config import ApiKeySpec, Ident

__all__ = ["RESERVED_NAMES", "KeyName", "check_key_name", "key_router", "name_skeleton"]

Role = Literal["admin", "operator", "enterprise", "viewer"]
_DAY_MS = 86_400_000
_NAME_PUNCT = frozenset("_.-")
# names the hub itself acts under (the journal's clock, the configuration's revisions and their
# sources) and their Chinese: a key so named would pass its notes off as the hub's (any case)
RESERVED_NAMES = frozenset(
    {SYSTEM, "hub", "file", "api", "import", "config", "configuration", "系统", "平台"}
)


def _han(ch: str) -> bool:
    """A Chinese character (CJK unified ideographs and their extensions; the compatibility
    ideographs are refused by NFKC, which changes them)."""
    return unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH-")


def check_key_name(name: str) -> str:
    """A key's name as the journal, the CSV and the logs name its holder (王工, li.ming): ASCII
    letters and digits, Chinese characters, and `_ . -`, starting with a letter, a digit or a
    Chinese character; Latin letters and Chinese characters not in one name. Refused: spaces of
    every kind, control and format characters (a bidi override or a zero-width space would make
    one name read as another, or a log line lie), every other punctuation and symbol (quotes,
    commas, `=`, `+`, `@`: a CSV cell, a header or a shell never has to quote a name), letters
    of other scripts (a Cyrillic `е` in `dеmo-admin` passed for the centre's `demo-admin` in the
    journal, helper-163; `一` among Latin letters for a `-`), a name that NFKC changes
    (full-width `ａｄｍｉｎ` would pass for `admin`), and the names the hub acts under itself
    (`RESERVED_NAMES`, in any case: `System` would pass for `system`). A name like another
    key's (`name_skeleton`) is refused where keys are made."""
    if name.casefold() in RESERVED_NAMES:
        raise ValueError(
            f"{name!r} is a name the hub acts under itself (the journal's system, the"
            " configuration's file or hub): name the key after its holder"
        )
    if unicodedata.normalize("NFKC", name) != name:
        raise ValueError(
            "a key name is written in its plain form (not full-width or compatibility letters)"
        )
    for i, ch in enumerate(name):
        ok = (ch.isascii() and ch.isalnum()) or _han(ch) or (i > 0 and ch in _NAME_PUNCT)
        if not ok:
            what = f"not hold {ch!r} (U+{ord(ch):04X})" if i else "start with a letter or digit"
            raise ValueError(
                f"a key name must {what}: ASCII letters and digits, Chinese characters, and"
                " _ . - after the first character (letters of other scripts look like Latin"
                " ones: a Cyrillic е passes for an e)"
            )
    if any(_han(ch) for ch in name) and any(ch.isascii() and ch.isalpha() for ch in name):
        raise ValueError(
            "a key name is in Chinese characters or in Latin letters, not both (王工, wang.gong;"
            " 一 among Latin letters passes for a -)"
        )
    return name


# letters and characters that pass for one another in a name (case aside)
_LOOKALIKE = str.maketrans({"0": "o", "1": "l", "i": "l", "一": "-", "_": "-", ".": "-"})


def name_skeleton(name: str) -> str:
    """What a name looks like: case folded, and `0`/`o`, `1`/`l`/`i`, `_`/`.`/`-`, `一`/`-`
    alike (`dem0-admin` looks like `Demo_Admin`)."""
    return name.casefold().translate(_LOOKALIKE).replace("rn", "m")


# a key's name: 1 to 64 characters, ASCII or Chinese (the journal says 王工)
KeyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(check_key_name),
]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName
    role: Role
    tenants: list[Ident] | None = Field(
        default=None,
        max_length=1000,
        description="the tenants the key sees; null (or empty) = every tenant (admin, operator "
        "only)",
    )
    expires_in_days: int = Field(default=90, ge=1, le=3650)


class KeyPublic(BaseModel):
    name: str
    role: str
    tenants: list[str] | None = Field(
        description="the tenants the key sees; null: every tenant (as `GET /api/v1/me` says)"
    )
    source: Literal["config", "api"]
    state: Literal["active", "expired", "revoked", "maker_revoked"]
    created_ms: int | None = None
    created_by: str | None = None
    expires_ms: int | None = None
    revoked_ms: int | None = None
    revoked_by: str | None = None


class KeyCreated(KeyPublic):
    key: str = Field(description="the key itself: shown this once, never again")


# the roles each role may make and manage keys of (a key never stronger than its maker's)
_MANAGED: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "operator", "enterprise", "viewer"}),
    "enterprise": frozenset({"enterprise", "viewer"}),
}


def _manages(caller: Principal, role: str, tenants: tuple[str, ...]) -> bool:
    """Whether `caller` may see and manage a key of `role` for `tenants` (empty: every tenant):
    a role its own role manages, and tenants within its own. A key of every tenant is managed
    only by a key of every tenant."""
    if role not in _MANAGED.get(caller.role, frozenset()):
        return False
    if caller.tenants is None:
        return True
    return bool(tenants) and all(caller.sees(t) for t in tenants)


def _check_manager(caller: Principal) -> None:
    require_writer(caller)
    if caller.role not in ("admin", "enterprise"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "API keys are managed by admins and enterprises"
        )


def _row_public(row: KeyRow, now: int, until: int | None) -> KeyPublic:
    """`until`: when the key stops working, its makers counted (None: a maker is revoked)."""
    state: Literal["active", "expired", "revoked", "maker_revoked"]
    if row.revoked_ms is not None:
        state = "revoked"
    elif until is None:
        state = "maker_revoked"
    else:
        state = "active" if now < until else "expired"
    return KeyPublic(
        name=row.name,
        role=row.role,
        tenants=_tenants(row.tenants),
        source="api",
        state=state,
        created_ms=row.created_ms,
        created_by=row.created_by,
        expires_ms=row.expires_ms if until is None else until,
        revoked_ms=row.revoked_ms,
        revoked_by=row.revoked_by,
    )


def _tenants(tenants: tuple[str, ...]) -> list[str] | None:
    """A key's tenants as the API says them: null for every tenant (a key keeps none)."""
    return list(tenants) or None


def _config_public(spec: ApiKeySpec) -> KeyPublic:
    return KeyPublic(
        name=spec.name,
        role=spec.role,
        tenants=_tenants(spec.tenants),
        source="config",
        state="active",
    )


def _need_db(ctx: AppContext) -> RegistryDB:
    if ctx.keys.db is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no key database here")
    return ctx.keys.db


def key_router() -> APIRouter:
    r = APIRouter(route_class=WriteGuard, prefix="/api/v1/api-keys", tags=["api-keys"])

    @r.get("", response_model=list[KeyPublic])
    def list_keys(ctx: Ctx, caller: Caller) -> list[KeyPublic]:
        """The keys the caller manages (never the keys themselves; they are kept as digests)."""
        _check_manager(caller)
        now = ctx.keys.now()
        out = [
            _config_public(k) for k in ctx.keys.config_keys if _manages(caller, k.role, k.tenants)
        ]
        if ctx.keys.db is not None:
            out += [
                _row_public(row, now, ctx.keys.until(row.name))
                for row in ctx.keys.db.api_keys()
                if _manages(caller, row.role, row.tenants)
            ]
        return out

    @r.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, dependencies=WRITE)
    def create_key(body: KeyCreate, ctx: Ctx, caller: Caller, response: Response) -> KeyCreated:
        """Make a key. The answer carries the key once; only its SHA-256 digest is kept."""
        _check_manager(caller)
        db = _need_db(ctx)
        tenants = tuple(dict.fromkeys(body.tenants or ()))
        if body.role in ("enterprise", "viewer") and not tenants:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["body", "tenants"],
                        "msg": f"a key with role {body.role!r} must name its tenants",
                        "type": "value_error",
                    }
                ],
            )
        if not _manages(caller, body.role, tenants):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "a key is made only for tenants of the caller's key (a key of every tenant only"
                " by a key of every tenant), and an enterprise makes only enterprise or viewer"
                " keys",
            )
        known = set(ctx.registry.tenants)
        unknown = [t for t in tenants if t not in known]
        if unknown:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["body", "tenants"],
                        "msg": f"unknown tenant(s) {unknown}",
                        "type": "value_error",
                    }
                ],
            )
        # the same answer wherever the name is taken (the configuration holds other tenants'
        # keys: where would tell their names); a configuration key's name in another case too
        taken = HTTPException(
            status.HTTP_409_CONFLICT,
            f"the key name {body.name!r} is taken, or one that looks like it: choose another",
        )
        # a name that looks like another key's too (`dem0-admin` beside `demo-admin`): the
        # journal would name one key's acts as the other's
        like = name_skeleton(body.name)
        names = [k.name for k in ctx.keys.config_keys] + [k.name for k in db.api_keys()]
        if any(name_skeleton(n) == like for n in names):
            raise taken
        key = "hh_" + secrets.token_urlsafe(32)
        now = ctx.keys.now()
        expires_ms = now + body.expires_in_days * _DAY_MS
        if caller.expires_ms is not None:  # never outlives its maker
            expires_ms = min(expires_ms, caller.expires_ms)
        row = KeyRow(
            name=body.name,
            sha256=hash_key(key),
            role=body.role,
            tenants=tenants,
            created_ms=now,
            created_by=caller.name,
            expires_ms=expires_ms,
            revoked_ms=None,
            revoked_by=None,
            maker=caller.source,
        )
        try:
            db.add_key(row)
        except RegistryDBError as exc:
            raise taken from exc
        ctx.keys.refresh()
        response.headers["Cache-Control"] = "no-store"
        return KeyCreated(**_row_public(row, now, expires_ms).model_dump(), key=key)

    @r.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=WRITE)
    def revoke_key(name: str, ctx: Ctx, caller: Caller) -> Response:
        """Revoke a key at once; revoking it again changes nothing."""
        _check_manager(caller)
        spec = next((k for k in ctx.keys.config_keys if k.name == name), None)
        if spec is not None and _manages(caller, spec.role, spec.tenants):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"key {name!r} is in the configuration; remove it there (or through the registry)",
            )
        db = ctx.keys.db
        row = next((k for k in db.api_keys() if k.name == name), None) if db is not None else None
        if db is None or row is None or not _manages(caller, row.role, row.tenants):
            raise not_found(f"API key {name!r}")
        db.revoke_key(name, actor=caller.name, now_ms=ctx.keys.now())
        ctx.keys.refresh()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return r
