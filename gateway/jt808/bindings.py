"""Which terminal each vehicle is bound to, and the auth code it holds (a SQLite file).

A vehicle is bound to the terminal that first registered it (0x0100): its maker id, model and
terminal id, as real JT/T 808 platforms do. A registration of a bound vehicle by another terminal
is refused ("vehicle already registered", result 1), and so is a registration of a bound terminal
for another vehicle ("terminal already registered", result 3), until an operator unbinds the
vehicle (`hazardhub jt808 unbind`). The phone number alone decides nothing: any TCP client can
put any number in its header.

Each registration of the bound terminal is given a new random auth code, and the old one dies;
only a hash of the code is kept (the file does not let its reader authenticate). The file is
shared by the gateways that share a spool folder, and by the `unbind` command while the gateway
runs: every registration and authentication reads it (a few per terminal connection).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.jt808.directory import VehicleRef
from telemetry.jt808.messages import RegisterResponse
from telemetry.private import keep_private

__all__ = ["BINDINGS_FILE", "Binding", "Bindings", "Refused", "Terminal", "administer"]

BINDINGS_FILE = "jt808-bindings.db"  # in the gateway's spool folder
_PREFIX = "hh2:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS binding (
    tenant TEXT NOT NULL,
    vehicle TEXT NOT NULL,
    terminal TEXT NOT NULL UNIQUE,
    maker TEXT NOT NULL,
    model TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    code_sha256 TEXT NOT NULL UNIQUE,
    bound_ms INTEGER NOT NULL,
    registered_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, vehicle)
)
"""
# (a binding's columns, then the terminal's key)
_BY_VEHICLE = (
    "SELECT tenant, vehicle, maker, model, terminal_id, phone, bound_ms, registered_ms, terminal "
    "FROM binding WHERE tenant = ? AND vehicle = ?"
)
_BY_TERMINAL = (
    "SELECT tenant, vehicle, maker, model, terminal_id, phone, bound_ms, registered_ms, terminal "
    "FROM binding WHERE terminal = ?"
)
_BY_CODE = (
    "SELECT tenant, vehicle, maker, model, terminal_id, phone, bound_ms, registered_ms, terminal "
    "FROM binding WHERE code_sha256 = ?"
)
_ALL = (
    "SELECT tenant, vehicle, maker, model, terminal_id, phone, bound_ms, registered_ms, terminal "
    "FROM binding ORDER BY tenant, vehicle"
)


@dataclass(frozen=True, slots=True)
class Terminal:
    """A terminal as its registration names it: maker id, model, terminal id (0x0100), and the
    phone number of its header (leading zeros left out)."""

    maker: str
    model: str
    terminal_id: str
    phone: str

    @property
    def key(self) -> str:
        """What identifies the terminal: maker, model and terminal id; the phone number too when
        the terminal sends no terminal id (cheap firmware leaves it blank)."""
        tid = self.terminal_id.strip(" \x00") or f"phone {self.phone}"
        return f"{self.maker.strip(' ')}\x00{self.model.strip(' ')}\x00{tid}"

    def __str__(self) -> str:
        return f"{self.maker}/{self.model}/{self.terminal_id or '-'} (phone {self.phone})"


@dataclass(frozen=True, slots=True)
class Binding:
    vehicle: VehicleRef
    terminal: Terminal
    bound_ms: int  # when its terminal first registered it
    registered_ms: int  # when its terminal last registered (its code was issued)


@dataclass(frozen=True, slots=True)
class Refused:
    """A registration refused: the 0x8100 result, and the binding in its way."""

    result: int
    bound: Binding


def _sha(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> str:
    """A random auth code: 4 + 32 ASCII characters (192 bits)."""
    return _PREFIX + secrets.token_urlsafe(24)


class Bindings:
    """The bindings, in the SQLite file `path` (in memory without one: tests, and a gateway
    without a spool folder forgets them when it stops)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:  # hashes only, but whose terminal is whose is nobody else's
            keep_private(path.parent, (path.name,))
        self.path = path
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), timeout=5.0, isolation_level=None
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def register(self, ref: VehicleRef, terminal: Terminal, now_ms: int) -> str | Refused:
        """A new auth code for `terminal` as `ref` (binding them if neither is bound), or why
        not: the vehicle is bound to another terminal, or the terminal to another vehicle."""
        code = new_code()
        with self._db:  # one transaction: two gateways registering at once see each other
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(_BY_VEHICLE, (ref.tenant, ref.vehicle)).fetchone()
            if row is not None and row[-1] != terminal.key:
                return Refused(RegisterResponse.VEHICLE_REGISTERED, _binding(row))
            row = self._db.execute(_BY_TERMINAL, (terminal.key,)).fetchone()
            if row is not None and _binding(row).vehicle != ref:
                return Refused(RegisterResponse.TERMINAL_REGISTERED, _binding(row))
            self._db.execute(
                "INSERT INTO binding (tenant, vehicle, terminal, maker, model, terminal_id, "
                "phone, code_sha256, bound_ms, registered_ms) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (tenant, vehicle) DO UPDATE SET phone = excluded.phone, "
                "code_sha256 = excluded.code_sha256, registered_ms = excluded.registered_ms",
                (
                    ref.tenant,
                    ref.vehicle,
                    terminal.key,
                    terminal.maker,
                    terminal.model,
                    terminal.terminal_id,
                    terminal.phone,
                    _sha(code),
                    now_ms,
                    now_ms,
                ),
            )
        return code

    def authenticate(self, code: str) -> Binding | None:
        """The binding whose terminal was last given `code`; None for any other code."""
        code = code.strip(" \x00")  # firmware that ends its STRING with a NUL
        if not code.startswith(_PREFIX):
            return None
        row = self._db.execute(_BY_CODE, (_sha(code),)).fetchone()
        return None if row is None else _binding(row)

    def unbind(self, ref: VehicleRef) -> Binding | None:
        """Forget the vehicle's binding (its code dies): the next terminal to register it binds
        it. The binding forgotten, None when there was none."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(_BY_VEHICLE, (ref.tenant, ref.vehicle)).fetchone()
            self._db.execute(
                "DELETE FROM binding WHERE tenant = ? AND vehicle = ?", (ref.tenant, ref.vehicle)
            )
        return None if row is None else _binding(row)

    def all(self) -> list[Binding]:
        rows = self._db.execute(_ALL)
        return [_binding(row) for row in rows]


def _binding(row: tuple[object, ...]) -> Binding:
    tenant, vehicle, maker, model, tid, phone, bound_ms, registered_ms, _ = row
    return Binding(
        VehicleRef(str(tenant), str(vehicle)),
        Terminal(str(maker), str(model), str(tid), str(phone)),
        int(bound_ms),  # type: ignore[call-overload]
        int(registered_ms),  # type: ignore[call-overload]
    )


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def administer(spool_dir: Path, action: str, vehicle: str | None) -> int:
    """`hazardhub jt808 bindings` (list them) and `hazardhub jt808 unbind --vehicle T/V`, on the
    bindings file of `spool_dir`, while the gateway runs or not: its next registration reads
    the file. The exit status."""
    path = spool_dir / BINDINGS_FILE
    if not path.exists():
        print(f"error: no bindings in {spool_dir} ({path} is not there)", file=sys.stderr)
        return 1
    store = Bindings(path)
    try:
        if action == "bindings":
            for b in store.all():
                print(
                    f"{b.vehicle.tenant}/{b.vehicle.vehicle}\tterminal {b.terminal}\t"
                    f"bound {_when(b.bound_ms)}\tregistered {_when(b.registered_ms)}"
                )
            return 0
        tenant, _, name = (vehicle or "").partition("/")
        if not tenant or not name:
            print(f"error: --vehicle must be TENANT/VEHICLE, not {vehicle!r}", file=sys.stderr)
            return 2
        gone = store.unbind(VehicleRef(tenant, name))
        if gone is None:
            print(f"{tenant}/{name} was bound to no terminal", file=sys.stderr)
            return 1
        print(
            f"{tenant}/{name} unbound from terminal {gone.terminal} (bound "
            f"{_when(gone.bound_ms)}); its auth code is dead: the next terminal to register "
            "it is bound to it"
        )
        return 0
    finally:
        store.close()
