"""MQTT users and ACLs for Mosquitto, generated from the configuration.

Each enterprise (tenant) gets a user that may publish only under its own topics; each gateway of
a tenant gets its own user limited to that tenant's telemetry and its own status topics; the hub
gets one user that reads everything and publishes alarms; an alarm reader (a provincial
early-warning system, `--alarm-reader NAME`) reads every tenant's alarm topics and publishes
nothing. Written in Mosquitto's formats:
`passwd` (PBKDF2-SHA512 hashes, as `mosquitto_passwd` makes them) and `acl`; the clear
passwords go to `credentials.txt` (mode 0600) for handing out, and are never logged.

`passwd` and `acl` are mode 0600 too (newer Mosquitto versions warn that a password file others
may read will be refused). Mosquitto reads them as its own user (`mosquitto` on
Debian), so they must be that user's: each file written again keeps the owner and group of the
one it replaces (`chown mosquitto:` once is enough).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from telemetry.errors import ConfigError
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

__all__ = [
    "ALARM_READER",
    "MqttUser",
    "acl_text",
    "alarm_readers",
    "dropped_users",
    "hash_password",
    "kept_passwords",
    "plan_users",
    "write_files",
]

_ITERATIONS = 101  # what mosquitto_passwd uses for $7$
ALARM_READER = "alarm-reader"  # the kind of a user that reads every tenant's alarms only
# an alarm reader's name: ASCII letters, digits, '.', '-', '_' (what the error says; the check
# refused only whitespace and `#+/:`, letting a quote, a control character or a `\` into the
# password file and the ACL)
_READER_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class MqttUser:
    name: str
    password: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    # hub, jt808, tenant, gateway, alarm-reader: a password is kept only for the same kind
    kind: str = ""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2's `$7$` password hash (PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS, 64)
    return f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def plan_users(
    registry: Registry,
    layout: TopicLayout,
    hub_user: str = "hazardhub-hub",
    readers: tuple[str, ...] = (),
) -> list[MqttUser]:
    """The users of the configuration, and the alarm `readers`: each reads every tenant's
    alarm topics (`{root}/+/alarms/#`: the hub's alarm events and its MQTT notifications) and
    may publish nothing (the broker drops what it publishes)."""
    root = layout.root
    users = [
        MqttUser(
            hub_user,
            secrets.token_urlsafe(18),
            (f"{root}/#",),
            (f"{root}/+/alarms/#", layout.vehicle_commands()),
            "hub",
        ),
        # the centre's JT/T 808 gateways: positions of every tenant's vehicles, the hub's
        # commands for their terminals, and in every tenant the status and drop reports of
        # their own names only (a status raises and clears a gateway's offline alarm, a drop
        # report a data_lost alarm: another gateway's would be forged)
        MqttUser(
            "hazardhub-jt808",
            secrets.token_urlsafe(18),
            (layout.vehicle_commands(),),
            (
                f"{root}/+/vehicles/+/position",
                # (a JT/T 809 gateway's: what a platform reported of a vehicle, its driver ...)
                f"{root}/+/vehicles/+/info",
                *(
                    f"{root}/+/gateways/{name}/{kind}"
                    for name in registry.config.jt808_gateways
                    # (supervision: a JT/T 809 gateway's platforms' answers to the centre's
                    # 督办, journaled on the alarm by the hub)
                    for kind in ("status", "dropped", "supervision")
                ),
            ),
            "jt808",
        ),
    ]
    for tenant in registry.tenants:
        gateways = sorted({d.spec.gateway for d in registry.devices.values() if d.tenant == tenant})
        # the status and drop reports of its own gateways only: not of the centre's JT/T 808
        # gateway, whose offline alarm of the tenant's vehicles it must not clear
        users.append(
            MqttUser(
                f"{tenant}",
                secrets.token_urlsafe(18),
                (f"{root}/{tenant}/alarms/#", f"{root}/{tenant}/vehicles/+/command"),
                (
                    # its sites' telemetry: `+/+/telemetry` took its own alarm topics too
                    *(
                        f"{root}/{tenant}/{site}/+/telemetry"
                        for site in sorted(registry.sites_of(tenant) - {"vehicles"})
                    ),
                    f"{root}/{tenant}/vehicles/+/position",
                    *(layout.gateway_status(tenant, gw) for gw in gateways),
                    *(layout.gateway_dropped(tenant, gw) for gw in gateways),
                ),
                "tenant",
            )
        )
        for gw in gateways:
            # the sites of its devices only: `{tenant}/+/+/telemetry` let it publish into the
            # tenant's alarm topics (`{tenant}/alarms/{site}/telemetry`), which the
            # enterprise's own `alarms/#` subscribers receive (site ids never take those names)
            sites = sorted(
                {
                    d.site
                    for d in registry.devices.values()
                    if (d.tenant, d.spec.gateway) == (tenant, gw)
                }
            )
            users.append(
                MqttUser(
                    f"{tenant}.{gw}",
                    secrets.token_urlsafe(18),
                    (),
                    (
                        *(f"{root}/{tenant}/{site}/+/telemetry" for site in sites),
                        layout.gateway_status(tenant, gw),
                        layout.gateway_dropped(tenant, gw),
                    ),
                    "gateway",
                )
            )
    for name in readers:
        if _READER_NAME.fullmatch(name) is None:
            raise ConfigError(
                f"alarm reader {name!r}: a user name of letters, digits, '.', '-' or '_'"
            )
        users.append(
            MqttUser(name, secrets.token_urlsafe(18), (f"{root}/+/alarms/#",), (), ALARM_READER)
        )
    _refuse_clashes(users)
    return users


def alarm_readers(out: Path) -> list[str]:
    """The alarm readers `out/credentials.txt` holds: a later run keeps them (by name and
    password) without `--alarm-reader` again, until one is dropped."""
    return sorted(name for name, kind in _known(out) if kind == ALARM_READER)


def _refuse_clashes(users: list[MqttUser]) -> None:
    """Two users of one name (tenant `acme.gw1` beside tenant `acme`'s gateway `gw1`, a tenant
    named `hazardhub-jt808`) would share a password entry and merge their ACLs in Mosquitto: one
    could publish the other's topics, and one of them could not log in."""
    seen: dict[str, int] = {}
    for u in users:
        seen[u.name] = seen.get(u.name, 0) + 1
    clashes = sorted(n for n, k in seen.items() if k > 1)
    if clashes:
        raise ConfigError(
            f"MQTT users named twice: {', '.join(clashes)} (a tenant's user is its id, a "
            "gateway's is tenant.gateway, and hazardhub-hub and hazardhub-jt808 are the hub's "
            "and the JT/T 808 gateway's): rename the tenant, gateway or alarm reader"
        )


def _known(out: Path) -> dict[tuple[str, str], str]:
    """The passwords `out/credentials.txt` holds, by user name and kind."""
    path = out / "credentials.txt"
    if not path.exists():
        return {}
    known: dict[tuple[str, str], str] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not parts[0].startswith("#"):  # name password kind
            known[(parts[0], parts[2])] = parts[1]
    return known


def dropped_users(users: list[MqttUser], out: Path) -> list[str]:
    """The users `out/credentials.txt` holds that `users` has not (by name and kind): writing
    the files takes away their login, and forgets their passwords."""
    planned = {(u.name, u.kind) for u in users}
    return sorted(name for name, kind in _known(out) if (name, kind) not in planned)


def kept_passwords(users: list[MqttUser], out: Path) -> list[MqttUser]:
    """The users with the passwords `out/credentials.txt` already holds for them (a user new
    since gets its new one): adding a device no longer hands every site a new password."""
    known = _known(out)
    # by name and kind: a name that changed meaning (gateway acme.gw1 gone, tenant acme.gw1
    # new) must not hand the gateway's installer the tenant's login
    return [
        MqttUser(u.name, known.get((u.name, u.kind), u.password), u.read, u.write, u.kind)
        for u in users
    ]


def acl_text(users: list[MqttUser]) -> str:
    lines = ["# generated by `hazardhub mqtt-credentials`: each user only its own tenant's topics"]
    for u in users:
        lines.append(f"\nuser {u.name}")
        lines += [f"topic read {t}" for t in u.read]
        lines += [f"topic write {t}" for t in u.write]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` at once (Mosquitto may reload it meanwhile), mode 0600, with
    the owner and group of the file it replaces when it can give them (root can)."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        try:
            old = path.stat()
        except FileNotFoundError:
            pass
        else:
            if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
    tmp.replace(path)


def write_files(users: list[MqttUser], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_private(
        out / "passwd", "".join(f"{u.name}:{hash_password(u.password)}\n" for u in users)
    )
    _write_private(out / "acl", acl_text(users))
    path = out / "credentials.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# user password kind (hand each to its enterprise or gateway; keep this file safe)\n"
        )
        f.writelines(f"{u.name} {u.password} {u.kind}\n" for u in users)
