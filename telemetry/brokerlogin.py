"""What to say when the MQTT broker refuses a client's login, shared by the hub and the gateways.

A broker that refuses the user or password is reachable: "broker unreachable ([code:135] Not
authorized)" sent operators looking at the network, and nothing pointed at the password variable
left unset or a password rotated by ``mqtt-credentials --rotate`` (helper-149).
"""

from __future__ import annotations

__all__ = ["PASSWORD_VARIABLE", "login_refused"]

PASSWORD_VARIABLE = "HAZARDHUB_MQTT_PASSWORD"  # noqa: S105 - its name, not a password

# CONNACK codes of a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135; paho also reports a
# 3.1.1 refusal so)
_REFUSED = {
    4: "bad user name or password",
    5: "not authorized",
    134: "bad user name or password",
    135: "not authorized",
}


def _code(exc: BaseException) -> int | None:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)  # paho's ReasonCode, or a bare int
    return value if isinstance(value, int) else None


def login_refused(exc: BaseException, username: str | None, password: str | None) -> str | None:
    """The words for `exc` (an aiomqtt error of the connection) when it is the broker refusing
    the login of `username` with `password`; None for anything else."""
    code = _code(exc)
    # aiomqtt's MqttConnectError (a CONNACK's refusal; not imported: telemetry needs no MQTT)
    at_connect = any(c.__name__ == "MqttConnectError" for c in type(exc).__mro__)
    why = _REFUSED.get(code) if code is not None and at_connect else None
    if why is None:
        return None
    if not username:
        return (
            f"the broker refused an anonymous login ({why}): give the client's MQTT user "
            f"(--broker-user) and its password in ${PASSWORD_VARIABLE}"
        )
    if not password:
        return (
            f"the broker refused the login of {username} ({why}): ${PASSWORD_VARIABLE} is "
            f"empty or unset; set it to {username}'s password (mqtt-credentials made it)"
        )
    return (
        f"the broker refused the login of {username} ({why}): check ${PASSWORD_VARIABLE} "
        "(a password rotated with mqtt-credentials --rotate must be given to this client too)"
    )
