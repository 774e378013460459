"""How the command line logs: one line a record on standard error, its time with the host's
zone (``2026-12-01 20:23:18.951 +0800 WARNING ingest.service: ...``: a centre's hosts on
different zones, or a hub on UTC beside Beijing-time terminals, are told apart), and, when
standard error is the systemd journal's stream (``$JOURNAL_STREAM`` names its device and inode,
as systemd sets it for a unit's output), each line begins with its syslog priority (``<4>`` for
a warning, sd-daemon(3)), so that ``journalctl -p warning`` finds the hub's warnings: without
it journald files every line at ``info``."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

__all__ = ["PRIORITIES", "HubFormatter", "JournalFormatter", "configure", "under_journal"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# syslog priorities (sd-daemon(3)): critical 2, error 3, warning 4, info 6, debug 7
PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class HubFormatter(logging.Formatter):
    """The time in local time with its zone's offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.localtime(record.created)
        ms = int(record.msecs)
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', t)}.{ms:03d} {time.strftime('%z', t)}"


class JournalFormatter(HubFormatter):
    """Each line (a traceback's too: the journal keeps a line an entry) with the record's
    syslog priority in front."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def priority(level: int) -> int:
    """The syslog priority of a logging level (a custom level takes the next one up's)."""
    for known in sorted(PRIORITIES):
        if level <= known:
            return PRIORITIES[known]
    return PRIORITIES[logging.CRITICAL]


def under_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal's stream systemd gave this process (``$JOURNAL_STREAM``
    is ``device:inode`` of it; a stream redirected elsewhere by a wrapper is not)."""
    given = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = given.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def configure(verbose: bool, stream: TextIO | None = None) -> logging.Handler | None:
    """The root logger's one handler (INFO, DEBUG with `verbose`) on `stream` (standard error),
    unless the root has handlers already (as `logging.basicConfig`: a host process's, pytest's);
    the libraries whose INFO lines carry secrets or noise held to warnings either way. Returns
    the handler made, if one was."""
    handler: logging.Handler | None = None
    root = logging.getLogger()
    if not root.handlers:
        out = stream if stream is not None else sys.stderr
        handler = logging.StreamHandler(out)
        handler.setFormatter((JournalFormatter if under_journal(out) else HubFormatter)(FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs each request's URL at INFO, a `user:password@` in an InfluxDB URL included
    for noisy in ("amqtt", "transitions", "pymodbus", "uvicorn.error", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(
            logging.CRITICAL if noisy == "pymodbus" else logging.WARNING
        )
    return handler
