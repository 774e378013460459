"""The JT/T 809 gateway's platforms (pydantic, frozen): which lower platforms may log in, with
what, and whose vehicles they send. Read once from their own YAML file (`load_platforms`), not
from the hub's configuration: the file holds the platforms' passwords, which the hub's
configuration API must not serve.

```yaml
platforms:
  - name: acme-gps            # in the log and the counters
    access_code: 20180920     # 接入码, MSG_GNSSCENTERID, given by the centre
    user_id: 20180920
    password: "pa55w0rd"      # at most 8 bytes; a secret: never logged
    tenant: chem-logistics    # the platform's vehicles are this tenant's
    version: 2011             # or 2019
    allow_from: [10.1.2.0/24] # optional: the source addresses it may connect from
    keys: {m1: 30000000, ia1: 20000000, ic1: 20000000}  # optional: the simple encryption
    sub_link: {address: "10.1.2.3:9809"}  # optional: open the sub link (docs/jt809.md)
```
"""

from __future__ import annotations

import hmac
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from telemetry.configbase import Frozen, Ident
from telemetry.errors import ConfigError
from telemetry.jt809 import Keys
from telemetry.yamlkeys import load_once

__all__ = ["Jt809Config", "KeysSpec", "PlatformSpec", "SubLinkSpec", "load_platforms"]

U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]


class KeysSpec(Frozen):
    """The simple encryption's M1, IA1, IC1 agreed with the platform."""

    m1: U32
    ia1: U32
    ic1: U32

    def keys(self) -> Keys:
        return Keys(self.m1, self.ia1, self.ic1)


class SubLinkSpec(Frozen):
    """The sub link (从链路): the gateway connects to the platform's down-link address."""

    address: str | None = Field(
        default=None,
        pattern=r"^[^\s:]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$",
        description="HOST:PORT to connect to instead of the one the login names (pin it: the "
        "login's is the platform's word)",
    )
    keepalive_s: float = Field(default=60.0, gt=0, le=3600, description="0x9005 every")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="for a connect, an answer")


class PlatformSpec(Frozen):
    name: Ident
    access_code: U32 = Field(description="接入码 (MSG_GNSSCENTERID) the centre gave it")
    user_id: U32
    password: SecretStr = Field(description="at most 8 bytes (GBK); never logged")
    tenant: Ident
    version: Literal[2011, 2019] = 2011
    allow_from: tuple[IPv4Network | IPv6Network, ...] = Field(
        default=(), description="source networks it may connect from (empty: any)"
    )
    keys: KeysSpec | None = None
    sub_link: SubLinkSpec | None = Field(
        default=None, description="open the sub link after each login (none: the main link only)"
    )

    @field_validator("password")
    @classmethod
    def _eight(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().encode("gb18030")
        if not 1 <= len(raw) <= 8:
            raise ValueError(f"the password is {len(raw)} bytes, 1 to 8 expected")
        return value

    @property
    def v2019(self) -> bool:
        return self.version == 2019

    def password_matches(self, sent: bytes) -> bool:
        """Whether the 8 bytes of a login are the password (NUL padding aside), compared in
        constant time."""
        want = self.password.get_secret_value().encode("gb18030").ljust(8, b"\x00")
        return hmac.compare_digest(want, sent[:8].ljust(8, b"\x00"))

    def allows(self, host: str) -> bool:
        if not self.allow_from:
            return True
        try:
            addr = ip_address(host.split("%", maxsplit=1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr.version == net.version and addr in net for net in self.allow_from)


class Jt809Config(Frozen):
    platforms: tuple[PlatformSpec, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for what in ("name", "access_code"):
            seen = [getattr(p, what) for p in self.platforms]
            twice = sorted({str(x) for x in seen if seen.count(x) > 1})
            if twice:
                raise ValueError(f"platforms: {what} given twice: {', '.join(twice)}")
        return self

    def by_code(self) -> dict[int, PlatformSpec]:
        return {p.access_code: p for p in self.platforms}


def load_platforms(path: Path) -> Jt809Config:
    """The platforms of the YAML file at `path`; `ConfigError` naming the file and the problem
    (never a password)."""
    try:
        doc = load_once(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return Jt809Config.model_validate(doc if doc is not None else {})
    except ValidationError as exc:
        said = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise ConfigError(f"{path}: {said}") from None
