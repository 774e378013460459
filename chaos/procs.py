"""The processes under test: each one a child in its own session, with a log file, a readiness
probe, SIGKILL (a crash) and SIGTERM/SIGINT (a clean stop), and a restart with the same argv.

Mosquitto and influxd get their own config files in the run folder, on free loopback ports, with
persistence in that folder, like `tests/services.py` (which the tests keep for themselves)."""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "INFLUXD",
    "LOOPBACK",
    "MOSQUITTO",
    "Proc",
    "ProcError",
    "free_port",
    "hazardhub_argv",
    "http_ok",
    "influxd",
    "mosquitto",
    "tcp_open",
]

MOSQUITTO = os.environ.get("HAZARDHUB_MOSQUITTO", "/usr/sbin/mosquitto")
INFLUXD = os.environ.get("HAZARDHUB_INFLUXD", "/usr/bin/influxd")
LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


class ProcError(RuntimeError):
    """A process did not start or stop as expected."""


def free_port(taken: set[int] | None = None) -> int:
    """A loopback TCP port below the ephemeral range that nothing listens on right now."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if taken is not None and port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        if taken is not None:
            taken.add(port)
        return port
    raise ProcError("no free port in 20000-32000")


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str, status: int = 200) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (loopback URL)
            return int(resp.status) == status
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proc:
    """One child process that can be crashed and started again with the same argv."""

    def __init__(
        self, name: str, argv: list[str], log: Path, ready: Callable[[], bool], cwd: Path = ROOT
    ) -> None:
        self.name, self.argv, self.log, self.ready, self.cwd = name, argv, log, ready, cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and return once the readiness probe answers."""
        if self.running:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ProcError(
                    f"{self.name} exited with {self._proc.returncode} while starting:\n"
                    f"{_tail(self.log)}"
                )
            if self.ready():
                return
            time.sleep(0.05)
        self.kill()
        raise ProcError(f"{self.name} not ready after {timeout_s:.0f} s:\n{_tail(self.log)}")

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._proc = None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """A clean stop; SIGKILL after `timeout_s`. Returns the exit code (None if killed)."""
        proc = self._proc
        if proc is None:
            return None
        code: int | None = proc.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                code = None
        self._proc = None
        return code

    def tail(self, lines: int = 30) -> str:
        return _tail(self.log, lines)


def mosquitto(folder: Path, port: int) -> Proc:
    """Debian's mosquitto on `port`, anonymous, persistent sessions saved in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    conf = folder / "mosquitto.conf"
    user = pwd.getpwuid(os.getuid()).pw_name  # as root it would drop to user "mosquitto"
    conf.write_text(
        f"user {user}\n"
        f"listener {port} {LOOPBACK}\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {folder / 'data'}/\n"
        "autosave_interval 5\n"
        f"log_dest file {folder / 'mosquitto.log'}\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "max_inflight_messages 1000\n"
        "max_queued_messages 100000\n"
    )
    return Proc(
        "mosquitto", [MOSQUITTO, "-c", str(conf)], folder / "stdout.log", lambda: tcp_open(port)
    )


def influxd(folder: Path, http_port: int, rpc_port: int) -> Proc:
    """Debian's influxd (1.x) answering the v1 HTTP API on `http_port`, data in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "influxdb.conf"
    conf.write_text(
        "reporting-disabled = true\n"
        f'bind-address = "{LOOPBACK}:{rpc_port}"\n'
        f'[meta]\n  dir = "{folder / "meta"}"\n'
        f'[data]\n  dir = "{folder / "data"}"\n  wal-dir = "{folder / "wal"}"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "{LOOPBACK}:{http_port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
        "[ifql]\n  enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
        '[logging]\n  level = "warn"\n'
    )
    url = f"http://{LOOPBACK}:{http_port}/ping"
    return Proc(
        "influxd",
        [INFLUXD, "-config", str(conf)],
        folder / "influxd.log",
        lambda: http_ok(url, 204),
    )


def hazardhub_argv(*args: str) -> list[str]:
    """`python -m hazardhub ARGS` with this interpreter."""
    return [sys.executable, "-m", "hazardhub", *args]
