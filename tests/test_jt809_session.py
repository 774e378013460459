"""The JT/T 809 session (sans-IO) never raises on what a platform sends: any bytes, and well-made
frames of every message id with any body, give actions (problems counted), before and after a
login, in 2011 and 2019."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jt808_helpers import TWO_TENANTS, registry_of
from jt809_helpers import KEYS, config

from gateway.jt809.session import LoggedIn, Problem, Publish, Send, Session
from gateway.jt809.vehicles import PlateBook
from telemetry.jt809 import (
    ExgMsg,
    FrameSplitter,
    Header,
    Login,
    MsgId,
    SubId,
    encode_frame,
)
from telemetry.jt809.frame import BadFrameError

ROOT = Path(__file__).resolve().parent.parent
MSG_IDS = st.sampled_from([*MsgId, *SubId, 0x9001, 0x9003, 0x9005, 0x9007, 0x1600, 0xFFFF])


@functools.cache
def _book() -> PlateBook:
    with tempfile.TemporaryDirectory(prefix="jt809-session-") as tmp:
        return PlateBook(registry_of(Path(tmp), TWO_TENANTS).vehicles.values())


def _session(tmp: Path, code: int, v2019: bool, logged_in: bool) -> Session:
    platforms = config().by_code()
    book = _book()
    s = Session(platforms, book, "127.0.0.1", lambda: 1_790_000_000_000)
    if logged_in:
        p = platforms[code]
        pw = p.password.get_secret_value().encode()
        body = Login(p.user_id, pw, "127.0.0.1", 1, code).encode(v2019)
        t = 1_790_000_000 if v2019 else None
        acts = s.receive(_inner(Header(MsgId.LOGIN, 1, code, time_s=t), body, p.keys is not None))
        assert any(isinstance(a, LoggedIn) for a in acts), acts
    return s


def _inner(header: Header, body: bytes, encrypt: bool = False) -> bytes:
    if encrypt:
        header = Header(
            header.msg_id,
            header.sn,
            header.access_code,
            encrypted=True,
            key=77,
            time_s=header.time_s,
        )
    raw = encode_frame(header, body, KEYS)
    (frame,) = FrameSplitter().feed(raw)
    assert isinstance(frame, bytes)
    return frame


@given(
    data=st.binary(max_size=300),
    msg_id=MSG_IDS,
    body=st.binary(max_size=200),
    which=st.sampled_from([(20180920, False), (33000001, True)]),
    logged_in=st.booleans(),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_session_never_raises(
    tmp_path: Path, data: bytes, msg_id: int, body: bytes, which: tuple[int, bool], logged_in: bool
) -> None:
    code, v2019 = which
    s = _session(tmp_path, code, v2019, logged_in)
    for item in FrameSplitter().feed(b"\x5b" + data + b"\x5d"):
        acts = s.receive(item)
        assert all(isinstance(a, Problem | Send | LoggedIn) or a for a in acts)
    t = 1_790_000_000 if v2019 else None
    s.receive(_inner(Header(msg_id, 9, code, time_s=t), body, encrypt=code == 20180920))
    s.receive(BadFrameError("cut"))


@given(
    sub=st.sampled_from([SubId.REAL_LOCATION, SubId.HISTORY_LOCATION, 0x1201]),
    data=st.binary(max_size=200),
    gnss=st.binary(min_size=36, max_size=36),
    n=st.integers(0, 6),
    v2019=st.booleans(),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_position_body_gives_actions(
    tmp_path: Path, sub: int, data: bytes, gnss: bytes, n: int, v2019: bool
) -> None:
    code = 33000001 if v2019 else 20180920
    s = _session(tmp_path, code, v2019, True)
    t = 1_790_000_000 if v2019 else None
    payloads = [data]
    if not v2019:  # well-formed 2011 positions of any field values
        payloads.append(bytes((n,)) + gnss * n if sub == SubId.HISTORY_LOCATION else gnss)
    else:  # a 2019 position around any JT/T 808 body
        one = b"\x00" + len(data).to_bytes(4, "big") + data + bytes(45)
        payloads.append(bytes((n,)) + one * n if sub == SubId.HISTORY_LOCATION else one)
    for payload in payloads:
        body = ExgMsg("苏AD1234" if not v2019 else "苏BK5678", 2, sub, payload).encode(v2019)
        acts = s.receive(_inner(Header(MsgId.EXG_MSG, 5, code, time_s=t), body, not v2019))
        for a in acts:
            if isinstance(a, Publish):
                assert all(isinstance(r["ts"], int) for r in a.records)
