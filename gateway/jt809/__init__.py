"""The JT/T 809 upper-platform gateway: lower (enterprise) platforms over the main link to
position records over MQTT.

The pure protocol is `telemetry.jt809`; here `config` (the platforms, their logins and keys),
`vehicles` (plate -> the tenant's vehicle), `session` (one link's state machine, sans-IO),
`guard` (what links not logged in may use, bad frames, failed logins), `server` (asyncio
TCP) and `gateway` (the process: server, the JT/T 808 gateway's uplink and spool, the
status).
"""

from gateway.jt809.config import Jt809Config, KeysSpec, PlatformSpec, load_platforms
from gateway.jt809.gateway import Jt809Gateway
from gateway.jt809.guard import Limits
from gateway.jt809.server import Jt809Server
from gateway.jt809.session import Session

__all__ = [
    "Jt809Config",
    "Jt809Gateway",
    "Jt809Server",
    "KeysSpec",
    "Limits",
    "PlatformSpec",
    "Session",
    "load_platforms",
]
