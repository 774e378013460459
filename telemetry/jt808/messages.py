"""JT/T 808 message bodies (pure): terminal registration 0x0100 and its answer 0x8100,
authentication 0x0102, heartbeat 0x0002, logout 0x0003, terminal general response 0x0001,
location report 0x0200, batch upload 0x0704, driver identity 0x0702 and its request 0x8702,
platform general response 0x8001, manual alarm confirmation 0x8203 and text message 0x8300
(a reminder the terminal shows and reads to the driver); alarm and status bits;
additional items; GMT+8 BCD time.

`decode_body(msg_id, body, v2019)` raises `Jt808Error` (the terminal's fault), or its subclass
`UnsupportedMessageError` for a message id we do not handle. Each message has `encode(v2019)`;
decoding then encoding gives back the same bytes (additional items keep order and raw values).

The bodies live by family: `general` (heartbeat, general responses), `registration`
(registration, authentication, logout), `location` (0x0200, 0x0704, alarm and status bits,
additional items), `driver` (0x0702, 0x8702), `commands` (0x8203, 0x8300); their data types
(text, BCD time, length checks) in `fields`, the ids in `ids`. Here: the `Message` union and
`decode_body`, and every name re-exported.
"""

from __future__ import annotations

from collections.abc import Callable

from telemetry.jt808.commands import AlarmConfirm, TextMessage
from telemetry.jt808.driver import DriverIdentity, DriverRequest
from telemetry.jt808.fields import bcd_time_to_ms, ms_to_bcd_time
from telemetry.jt808.general import Heartbeat, PlatformResponse, TerminalResponse
from telemetry.jt808.ids import MsgId, UnsupportedMessageError
from telemetry.jt808.location import Alarm, BatchLocation, Extra, Location, Status
from telemetry.jt808.registration import Authenticate, Logout, Register, RegisterResponse

__all__ = [
    "Alarm",
    "AlarmConfirm",
    "Authenticate",
    "BatchLocation",
    "DriverIdentity",
    "DriverRequest",
    "Extra",
    "Heartbeat",
    "Location",
    "Logout",
    "Message",
    "MsgId",
    "PlatformResponse",
    "Register",
    "RegisterResponse",
    "Status",
    "TerminalResponse",
    "TextMessage",
    "UnsupportedMessageError",
    "bcd_time_to_ms",
    "decode_body",
    "ms_to_bcd_time",
]


Message = (
    Heartbeat
    | Logout
    | TerminalResponse
    | PlatformResponse
    | Register
    | RegisterResponse
    | Authenticate
    | Location
    | BatchLocation
    | AlarmConfirm
    | DriverIdentity
    | DriverRequest
    | TextMessage
)

_DECODERS: dict[int, Callable[[bytes, bool], Message]] = {
    int(cls.msg_id): cls.decode
    for cls in (
        Heartbeat,
        Logout,
        TerminalResponse,
        PlatformResponse,
        Register,
        RegisterResponse,
        Authenticate,
        Location,
        BatchLocation,
        AlarmConfirm,
        DriverIdentity,
        DriverRequest,
        TextMessage,
    )
}


def decode_body(msg_id: int, body: bytes, v2019: bool) -> Message:
    """The message of a (reassembled) frame body."""
    decoder = _DECODERS.get(msg_id)
    if decoder is None:
        raise UnsupportedMessageError(f"message {msg_id:#06x} is not supported")
    return decoder(body, v2019)
