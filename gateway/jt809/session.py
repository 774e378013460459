"""One lower platform's main link as a state machine (sans-IO): unescaped frames in, actions out
(bytes to send, position records to publish, problems to count, the link to close).

Before a login only a login 0x1001 is taken: it is checked in this order, each refusal its
0x1002 result: the header's access code (and, in 2019, the body's) is a configured platform's
(2, `BAD_ACCESS_CODE`), the source address is one it may connect from (1, `BAD_IP`), the user
id is the platform's (3, `NO_USER`), the password (4, `BAD_PASSWORD`, compared in constant
time). A refused login is answered, then the link closed; a login the server holds back (a
backoff after failed logins) is closed unanswered and unchecked; a login body of the other
version is answered OTHER (6). Anything else before a login is counted `before_login` and
dropped. What happens before a login is counted as no platform's (anyone may write an access
code), the platform claimed in the text. Once logged in: keep-alive 0x1005 is answered 0x1006,
logout 0x1003 answered 0x1004 and the link closed, 0x1008 closes it, UP_EXG_MSG 0x1200's
0x1202 and 0x1203 become the position records of `gateway.jt808.records` (the 2011 position as
the JT/T 808 report it carries the fields of; the 2019 one is one), its 0x1201, 0x120C and 0x120D
a vehicle's `Report` (`gateway.jt809.reports`), UP_WARN_MSG 0x1400's 0x1402
warnings are logged and counted (`Warn`), not sent to the hub, its 0x1401 answers to the centre's
supervisions go to the hub (`Answered`); other messages are counted
`unsupported` and dropped. A frame or body that cannot be read is counted and dropped; the link
goes on (the next frame starts at the next 0x5B).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.jt808.directory import VehicleRef
from gateway.jt808.records import position_record
from gateway.jt809.config import PlatformSpec
from gateway.jt809.reports import Report, read_report
from gateway.jt809.vehicles import PlateBook
from telemetry.jt809 import (
    BadBodyError,
    BadFrameError,
    DisconnectNotice,
    ExgMsg,
    Frame,
    Gnss2011,
    Gnss2019,
    Header,
    HistoryLocation,
    Jt809Error,
    Login,
    LoginResponse,
    LoginResult,
    MsgId,
    SubId,
    SuperviseAnswer,
    UnsupportedError,
    WarnInfo,
    WarnMsg,
    decode_body,
    decode_frame,
    decode_positions,
    decode_supervise_answer,
    decode_warning,
    encode_frame,
    is_vehicle_report,
    peek_access_code,
)
from telemetry.jt809.frame import HEADER_2011, HEADER_2019, VERSION_2011, VERSION_2019

__all__ = [
    "Action",
    "Answered",
    "Close",
    "LoggedIn",
    "Problem",
    "Publish",
    "Send",
    "Session",
    "Warn",
]


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    ref: VehicleRef
    records: tuple[dict[str, object], ...]
    color: int = 0  # the plate colour the platform gave


@dataclass(frozen=True, slots=True)
class Answered:
    """A platform's answer (0x1401) to a supervision (0x9401) of the centre's."""

    platform: str
    plate: str  # (2011; empty in 2019)
    answer: SuperviseAnswer


@dataclass(frozen=True, slots=True)
class Problem:
    """Counted under `kind` for the platform (`platform` None: the link has not logged in, the
    `unauthenticated` bucket); `text` for the log (never a password; the peer's words in it are
    escaped by the server). `login_code`: a login refused, the access code it named."""

    kind: str
    text: str
    platform: str | None = None
    warn: bool = True  # worth a warning (else info)
    login_code: int | None = None


@dataclass(frozen=True, slots=True)
class Warn:
    """A platform's warning (0x1402): logged and counted, not an alarm of the hub's."""

    platform: str
    vehicle: str  # tenant/vehicle, or the plate when it is none of the tenant's
    info: WarnInfo


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The login taken: the verify code its 0x1002 gave, the down-link address it named (for
    the sub link)."""

    platform: PlatformSpec
    verify_code: int
    down: tuple[str, int]


@dataclass(frozen=True, slots=True)
class Close:
    why: str


Action = Send | Publish | Problem | Warn | Answered | LoggedIn | Close | Report

FUTURE_MS = 30_000  # a position further ahead of the gateway's clock is counted future_positions
_LOGIN_2019_LEN = 1 + HEADER_2019 + 50 + 2 + 1  # MSG_LENGTH of a 2019 login
_LOGIN_2011_LEN = 1 + HEADER_2011 + 46 + 2 + 1


class Session:
    def __init__(
        self,
        platforms: dict[int, PlatformSpec],
        book: PlateBook,
        peer_host: str,
        clock_ms: Callable[[], int],
        held: Callable[[int], str | None] = lambda code: None,
    ) -> None:
        """`held(access_code)`: why a login naming it is closed unchecked (a backoff after
        failed logins), or None."""
        self.platforms = platforms
        self.held = held
        self.book = book
        self.peer_host = peer_host
        self.clock_ms = clock_ms
        self.platform: PlatformSpec | None = None  # once logged in
        self.logged_out = False  # it logged out (0x1003)
        self._sn = 0
        self._version = VERSION_2011
        self._bits: dict[VehicleRef, bool] = {}  # the last record published carried alarm bits

    @property
    def name(self) -> str | None:
        return self.platform.name if self.platform else None

    def receive(self, item: bytes | BadFrameError) -> list[Action]:
        """What to do with one frame (unescaped, without its flags) or one the splitter could
        not unescape."""
        if isinstance(item, BadFrameError):
            return [Problem("bad_frame", str(item), self.name)]
        try:
            code = peek_access_code(item)
        except BadFrameError as exc:
            return [Problem("bad_frame", str(exc), self.name)]
        if self.platform is not None:
            if code != self.platform.access_code:
                return [Problem("wrong_access_code", f"access code {code}", self.name)]
            return self._online(self.platform, item)
        platform = self.platforms.get(code)
        if platform is None:
            return self._stranger(code, item)
        try:
            frame = decode_frame(
                item, platform.v2019, platform.keys.keys() if platform.keys else None
            )
        except BadFrameError as exc:
            return [Problem("bad_frame", f"{exc} (claims {platform.name})")]
        if frame.header.msg_id != MsgId.LOGIN:
            what = f"message {frame.header.msg_id:#06x} before a login (claims {platform.name})"
            return [Problem("before_login", what)]
        if (why := self.held(code)) is not None:
            return [Problem("login_held", f"{why} (claims {platform.name})"), Close(why)]
        return self._login(platform, frame)

    # --- before a login ---------------------------------------------------------------------

    def _stranger(self, code: int, inner: bytes) -> list[Action]:
        msg_id = int.from_bytes(inner[8:10], "big")
        problem = Problem("unknown_access_code", f"access code {code}, message {msg_id:#06x}")
        if msg_id != MsgId.LOGIN:
            return [problem]
        if (why := self.held(code)) is not None:
            return [Problem("login_held", f"{why} (access code {code})"), Close(why)]
        problem = Problem(problem.kind, problem.text, login_code=code)
        v2019 = int.from_bytes(inner[:4], "big") == _LOGIN_2019_LEN
        version = VERSION_2019 if v2019 else VERSION_2011
        answer = self._frame(code, v2019, version, LoginResponse(LoginResult.BAD_ACCESS_CODE))
        return [problem, Send(answer), Close("login refused: unknown access code")]

    def _login(self, platform: PlatformSpec, frame: Frame) -> list[Action]:
        try:
            login = Login.decode(frame.body, platform.v2019)
        except BadBodyError as exc:
            return self._other_version(platform, frame, exc)
        self._version = frame.header.version
        if platform.v2019 and login.access_code != platform.access_code:
            result = LoginResult.BAD_ACCESS_CODE
        elif not platform.allows(self.peer_host):
            result = LoginResult.BAD_IP
        elif login.user_id != platform.user_id:
            result = LoginResult.NO_USER
        elif not platform.password_matches(login.password):
            result = LoginResult.BAD_PASSWORD
        else:
            result = LoginResult.OK
        if result != LoginResult.OK:
            answer = self._reply(platform, LoginResponse(result))
            why = f"login refused: {result.name} (0x1002 result {int(result)})"
            text = f"{why}, user id {login.user_id} (claims {platform.name})"
            return [
                Problem("login_refused", text, self.name, login_code=platform.access_code),
                Send(answer),
                Close(why),
            ]
        self.platform = platform
        code = secrets.randbits(32)
        answer = self._reply(platform, LoginResponse(LoginResult.OK, code))
        return [Send(answer), LoggedIn(platform, code, (login.down_ip, login.down_port))]

    def _other_version(
        self, platform: PlatformSpec, frame: Frame, exc: BadBodyError
    ) -> list[Action]:
        """A login body that cannot be read: answered OTHER (6) in the version its length fits,
        the link closed, the likely cause said (a version other than the entry's)."""
        length = len(frame.body) + (HEADER_2019 if platform.v2019 else HEADER_2011) + 4
        other = 2011 if platform.v2019 else 2019
        fits = length == (_LOGIN_2011_LEN if platform.v2019 else _LOGIN_2019_LEN)
        v2019 = not platform.v2019 if fits else platform.v2019
        version = (VERSION_2019 if v2019 else VERSION_2011) if fits else frame.header.version
        answer = self._frame(platform.access_code, v2019, version, LoginResponse(LoginResult.OTHER))
        text = f"login unreadable (claims {platform.name}): {exc}"
        if fits:
            text += (
                f"; its length ({length} bytes) is a JT/T 809-{other} login: the platform's "
                f"entry says version {platform.version}, check `version` in the platforms file"
            )
        return [
            Problem("bad_login", text, self.name, login_code=None),
            Send(answer),
            Close("login refused: OTHER (0x1002 result 6)"),
        ]

    # --- logged in ----------------------------------------------------------------------------

    def _online(self, platform: PlatformSpec, inner: bytes) -> list[Action]:
        keys = platform.keys.keys() if platform.keys else None
        try:
            frame = decode_frame(inner, platform.v2019, keys)
            msg = decode_body(frame.header.msg_id, frame.body, platform.v2019)
        except UnsupportedError as exc:
            return [Problem("unsupported", str(exc), platform.name, warn=False)]
        except BadFrameError as exc:
            return [Problem("bad_frame", str(exc), platform.name)]
        except BadBodyError as exc:
            return [Problem("bad_body", str(exc), platform.name)]
        mid = frame.header.msg_id
        if mid == MsgId.LOGIN:  # again on its link (its answer lost?): checked again
            return self._login(platform, frame)
        if mid == MsgId.KEEP_ALIVE:
            return [Send(self._reply(platform, _Bare(MsgId.KEEP_ALIVE_RESPONSE)))]
        if mid == MsgId.LOGOUT:
            self.logged_out = True
            return [Send(self._reply(platform, _Bare(MsgId.LOGOUT_RESPONSE))), Close("logout")]
        if mid == MsgId.CLOSE_NOTICE:
            return [Close("the platform closes the link (0x1008)")]
        if isinstance(msg, DisconnectNotice):  # 0x1007: its sub-link message, said here too
            what = f"the platform says its main link broke (0x1007, reason {msg.reason})"
            return [Problem("disconnect_notice", what, platform.name, warn=False)]
        if isinstance(msg, ExgMsg) and is_vehicle_report(msg.sub_id):  # 0x1201, 0x120C, 0x120D
            got = read_report(platform.name, platform.tenant, msg, platform.v2019, self.book)
            return [r if isinstance(r, Report) else Problem(r.kind, r.text, platform.name, r.warn)
                    for r in got]  # fmt: skip
        if isinstance(msg, ExgMsg):
            return self._positions(platform, msg)
        if isinstance(msg, WarnMsg):
            return self._warning(platform, msg)
        what = f"message {mid:#06x} on the main link"
        return [Problem("unsupported", what, platform.name, warn=False)]

    def _positions(self, platform: PlatformSpec, exg: ExgMsg) -> list[Action]:
        name = platform.name
        try:
            got = decode_positions(exg, platform.v2019)
        except UnsupportedError as exc:
            return [Problem("unsupported", str(exc), name, warn=False)]
        except BadBodyError as exc:
            return [Problem("bad_body", f"{exg.plate}: {exc}", name)]
        ref = self.book.find(platform.tenant, exg.plate)
        if isinstance(ref, str):
            text = f"plate {exg.plate} (colour {exg.color}) in tenant {platform.tenant}"
            return [Problem(ref, text, name)]
        items = got.positions if isinstance(got, HistoryLocation) else (got.position,)
        out: list[Action] = []
        records: list[dict[str, object]] = []
        for g in items:
            rec = self._record(ref, g)
            if isinstance(rec, Problem):
                out.append(Problem(rec.kind, f"{ref}: {rec.text}", name, rec.warn))
                continue
            if g.encrypt:
                out.append(Problem("offset_positions", f"{ref}: GCJ-02 place", name, False))
            records.append(rec)
            ts = rec.get("ts")
            ahead_ms = ts - self.clock_ms() if isinstance(ts, int) else 0
            if ahead_ms > FUTURE_MS:
                text = (
                    f"{ref}: a position {ahead_ms / 1000:.0f} s ahead of the gateway's clock "
                    "(published: the hub decides)"
                )
                out.append(Problem("future_positions", text, name))
        if records:
            out.append(Publish(ref, tuple(records), exg.color))
        return out

    def _warning(self, platform: PlatformSpec, msg: WarnMsg) -> list[Action]:
        if msg.sub_id == SubId.WARN_ADVISE:  # 0x1401: the answer to a supervision (0x9401)
            try:
                answer = decode_supervise_answer(msg, platform.v2019)
            except BadBodyError as exc:
                return [Problem("bad_body", str(exc), platform.name)]
            return [Answered(platform.name, msg.plate, answer)]
        try:
            info = decode_warning(msg, platform.v2019)
        except UnsupportedError as exc:
            return [Problem("unsupported", str(exc), platform.name, warn=False)]
        except BadBodyError as exc:
            return [Problem("bad_body", str(exc), platform.name)]
        plate = info.plate if platform.v2019 else msg.plate
        ref = self.book.find(platform.tenant, plate)
        return [Warn(platform.name, f"plate {plate}" if isinstance(ref, str) else str(ref), info)]

    def _record(self, ref: VehicleRef, g: Gnss2011 | Gnss2019) -> dict[str, object] | Problem:
        try:
            loc = g.location()
        except Jt809Error as exc:
            return Problem("bad_position", str(exc))
        assert self.platform is not None
        rec = position_record(loc, v2019=self.platform.v2019, clearing=self._bits.get(ref, True))
        if isinstance(rec, str):
            return Problem(rec, f"position at {loc.time} dropped: {rec}", warn=False)
        self._bits[ref] = bool(rec.get("alarm_flags"))
        return rec

    # --- answers ------------------------------------------------------------------------------

    def _reply(self, platform: PlatformSpec, body: _Body) -> bytes:
        return self._frame(platform.access_code, platform.v2019, self._version, body)

    def frame(self, body: _Body) -> bytes:
        """A frame of ours to the logged-in platform (the sub link's messages, 0x9007)."""
        assert self.platform is not None
        return self._reply(self.platform, body)

    def _frame(self, code: int, v2019: bool, version: tuple[int, int, int], body: _Body) -> bytes:
        self._sn = (self._sn + 1) & 0xFFFFFFFF
        t = self.clock_ms() // 1000 if v2019 else None
        header = Header(body.msg_id, self._sn, code, version=version, time_s=t)
        return encode_frame(header, body.encode(v2019))


class _Body(Protocol):
    @property
    def msg_id(self) -> int: ...

    def encode(self, v2019: bool = False) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _Bare:
    """An answer without a body (0x1004, 0x1006)."""

    msg_id: int

    def encode(self, v2019: bool = False) -> bytes:
        return b""
