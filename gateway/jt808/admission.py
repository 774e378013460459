"""The admission phase of a JT/T 808 session (pure, sans-IO): registration 0x0100 (a vehicle
bound to its terminal, an auth code issued) and authentication 0x0102 (the code checked).

    CONNECTED --0x0100 ok--> REGISTERED --0x0102 ok--> AUTHENTICATED
    CONNECTED --0x0102 ok (code from an earlier registration)--> AUTHENTICATED
"""

from __future__ import annotations

from gateway.jt808.bindings import Bindings, Refused, Terminal
from gateway.jt808.directory import Conflict, Directory, VehicleRef, phone_key
from gateway.jt808.events import Authenticated, Event, Problem, Send
from gateway.jt808.link import Link, State
from telemetry.jt808.codec import Header, encode_frame
from telemetry.jt808.messages import (
    Authenticate,
    DriverRequest,
    MsgId,
    PlatformResponse,
    Register,
    RegisterResponse,
)

__all__ = ["Admission"]


class Admission(Link):
    """A session's admission: which vehicle the terminal is (`directory`), which terminal is
    bound to it and its auth code (`bindings`). Set up by `Session`."""

    directory: Directory
    bindings: Bindings
    vehicle: VehicleRef | None

    def _register(self, h: Header, msg: Register, now_ms: int, events: list[Event]) -> None:
        result, ref = self.directory.register(h.phone, msg.plate)
        code = ""
        if isinstance(ref, VehicleRef):
            terminal = Terminal(msg.maker, msg.model, msg.terminal_id, phone_key(h.phone))
            issued = self.bindings.register(ref, terminal, now_ms)
            if isinstance(issued, Refused):
                result = issued.result
                events.append(Problem("binding_refused", _refusal(ref, terminal, issued)))
            else:
                code = issued
                if self.state is State.CONNECTED:
                    self.state = State.REGISTERED
        elif isinstance(ref, Conflict):
            events.append(Problem("terminal_conflict", f"{ref}: registration refused"))
        else:
            events.append(
                Problem("unknown_terminal", f"terminal {h.terminal} plate {msg.plate!r}: {result}")
            )
        reply = h.reply(MsgId.REGISTER_RESPONSE, self.next_serial())
        body = RegisterResponse(h.serial, result, code).encode(reply.is_2019)
        events.append(Send(encode_frame(reply, body)))

    def _authenticate(self, h: Header, msg: Authenticate, events: list[Event]) -> None:
        # the code last given to this vehicle's bound terminal, from the number it registered
        # with; then the configuration must still have that number be that vehicle
        bound = self.bindings.authenticate(msg.auth_code)
        ref: VehicleRef | Conflict | None = None
        if bound is not None and bound.terminal.phone == phone_key(h.phone):
            ref = self.directory.check(h.phone, bound.vehicle)
        if not isinstance(ref, VehicleRef):
            if isinstance(ref, Conflict):
                events.append(Problem("terminal_conflict", f"{ref}: authentication refused"))
            else:
                events.append(Problem("auth_failed", f"terminal {h.terminal}: wrong auth code"))
            self._answer(h, PlatformResponse.FAILED, events)
            return
        self.vehicle, self.phone, self.state = ref, h.phone, State.AUTHENTICATED
        self._answer(h, PlatformResponse.OK, events)
        events.append(Authenticated(ref, h.phone))
        # who drives (the IC card in the terminal): its positions then count for him
        events.append(Send(self.encode(DriverRequest())))


def _refusal(ref: VehicleRef, terminal: Terminal, refused: Refused) -> str:
    """Why a registration was refused, for the operator: who holds the binding, and how to
    move it."""
    b = refused.bound
    vehicle = f"{b.vehicle.tenant}/{b.vehicle.vehicle}"
    if refused.result == RegisterResponse.VEHICLE_REGISTERED:
        why = f"{ref.tenant}/{ref.vehicle} is bound to terminal {b.terminal}"
    else:
        why = f"the terminal is bound to {vehicle}"
    return (
        f"registration of {ref.tenant}/{ref.vehicle} by terminal {terminal} refused: {why}; "
        f"if the terminal was changed, `hazardhub jt808 unbind --vehicle {vehicle}`"
    )
