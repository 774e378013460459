"""The JT/T 809 wire protocol (2011 and 2019), pure: framing, escaping, CRC, header and the
simple encryption in `frame`; the main link's message bodies in `messages`. The upper platform's
gateway (`gateway.jt809`) and the tests' lower platform share it."""

from telemetry.jt809.fields import BadBodyError, UnsupportedError
from telemetry.jt809.frame import (
    BadFrameError,
    Frame,
    FrameOverflowError,
    FrameSplitter,
    Header,
    Jt809Error,
    Keys,
    crc16,
    crypt,
    decode_frame,
    encode_frame,
    escape,
    peek_access_code,
    unescape,
)
from telemetry.jt809.ids import LoginResult, MsgId, SubId
from telemetry.jt809.messages import (
    CloseNotice,
    DisconnectNotice,
    KeepAlive,
    KeepAliveResponse,
    Login,
    LoginResponse,
    Logout,
    LogoutResponse,
    Message,
    decode_body,
    decode_positions,
)
from telemetry.jt809.positions import ExgMsg, Gnss2011, Gnss2019, HistoryLocation, RealLocation
from telemetry.jt809.warnings import WarnInfo, WarnMsg, decode_warning

__all__ = [
    "BadBodyError",
    "BadFrameError",
    "CloseNotice",
    "DisconnectNotice",
    "ExgMsg",
    "Frame",
    "FrameOverflowError",
    "FrameSplitter",
    "Gnss2011",
    "Gnss2019",
    "Header",
    "HistoryLocation",
    "Jt809Error",
    "KeepAlive",
    "KeepAliveResponse",
    "Keys",
    "Login",
    "LoginResponse",
    "LoginResult",
    "Logout",
    "LogoutResponse",
    "Message",
    "MsgId",
    "RealLocation",
    "SubId",
    "UnsupportedError",
    "WarnInfo",
    "WarnMsg",
    "crc16",
    "crypt",
    "decode_body",
    "decode_frame",
    "decode_positions",
    "decode_warning",
    "encode_frame",
    "escape",
    "peek_access_code",
    "unescape",
]
