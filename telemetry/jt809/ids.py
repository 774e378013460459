"""JT/T 809 message and sub-business ids, and the login results (pure)."""

from __future__ import annotations

import enum

__all__ = ["LoginResult", "MsgId", "SubId"]


class MsgId(enum.IntEnum):
    LOGIN = 0x1001
    LOGIN_RESPONSE = 0x1002
    LOGOUT = 0x1003
    LOGOUT_RESPONSE = 0x1004
    KEEP_ALIVE = 0x1005
    KEEP_ALIVE_RESPONSE = 0x1006
    DISCONNECT_NOTICE = 0x1007
    CLOSE_NOTICE = 0x1008
    EXG_MSG = 0x1200
    WARN_MSG = 0x1400
    DOWN_WARN_MSG = 0x9400


class SubId(enum.IntEnum):
    REGISTER = 0x1201
    REAL_LOCATION = 0x1202
    HISTORY_LOCATION = 0x1203
    REPORT_DRIVER_INFO = 0x120C
    REPORT_EWAYBILL_INFO = 0x120D
    WARN_ADVISE = 0x1401
    WARN_INFO = 0x1402
    WARN_URGE_TODO_REQ = 0x9401


class LoginResult(enum.IntEnum):
    """0x1002's results."""

    OK = 0x00
    BAD_IP = 0x01
    BAD_ACCESS_CODE = 0x02
    NO_USER = 0x03
    BAD_PASSWORD = 0x04
    BUSY = 0x05
    OTHER = 0x06
