"""The JT/T 808 gateway: terminals over TCP to position records over MQTT.

The pure protocol (framing, bodies) is `telemetry.jt808`, shared with the terminal simulator;
here are the pieces with state and I/O: `directory` (terminal -> vehicle, auth codes), `session`
(the per-terminal state machine, sans-IO: its phases `link` and `admission`, its `events`, the
position `records`), `hold` (positions held until the backlog older than them came, sans-IO;
`holding` carries it out), `packets` (sub-packaged messages joined, missing ones asked for
again with 0x8003), `uplink` (spool + MQTT), `connection` (one terminal's asyncio
protocol) and `server` (asyncio TCP).
"""

from gateway.jt808.directory import Directory, VehicleRef
from gateway.jt808.gateway import Jt808Gateway
from gateway.jt808.hold import HoldPolicy
from gateway.jt808.packets import PacketPolicy
from gateway.jt808.server import Jt808Server
from gateway.jt808.session import Session, State, position_record
from gateway.jt808.uplink import PositionUplink

__all__ = [
    "Directory",
    "HoldPolicy",
    "Jt808Gateway",
    "Jt808Server",
    "PacketPolicy",
    "PositionUplink",
    "Session",
    "State",
    "VehicleRef",
    "position_record",
]
