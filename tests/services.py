"""Real servers for component tests: Mosquitto and InfluxDB 1.x on free loopback ports.

Each service lives in its own temporary folder (config, data, log), is started as a child process in
its own session, is ready when it answers (TCP connect for Mosquitto, ``GET /ping`` -> 204 for
InfluxDB), and can be stopped and started again on the same port with the same data, so that tests
can take a broker or a database away and bring it back. `stop()` sends SIGTERM, then SIGKILL after a
timeout; an ``atexit`` hook kills whatever a crashed test run left behind.

The binaries come from Debian's ``mosquitto`` and ``influxdb`` packages (``make test`` installs
them). A missing binary raises `BinaryMissingError`; the fixtures turn that into a test failure,
never a skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = [
    "INFLUXD",
    "MOSQUITTO",
    "BinaryMissingError",
    "BrokerCerts",
    "InfluxService",
    "MosquittoService",
    "ServiceError",
    "free_port",
]

MOSQUITTO = os.environ.get("HAZARDHUB_MOSQUITTO", "/usr/sbin/mosquitto")
INFLUXD = os.environ.get("HAZARDHUB_INFLUXD", "/usr/bin/influxd")
LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A test service did not start or stop as expected."""


class BinaryMissingError(ServiceError):
    """The service's binary is not installed."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now.

    Chosen below Linux's ephemeral range (32768-60999), so that the outgoing connections tests
    make (which take ephemeral ports) cannot take it between this call and the server's bind.
    """
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise ServiceError("no free port in 20000-32000")


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA: trust the certificate itself) and its key,
    made with openssl in `folder`: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise BinaryMissingError(
            f"{binary} not found: the component tests need Debian's {package!r} package. "
            f"Run `make test` (it installs mosquitto and influxdb), or "
            f"`apt-get install -y {package}`."
        )
    return path


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


_LIVE: weakref.WeakSet[_Service] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for service in list(_LIVE):
        service.kill()


class _Service:
    """One child process with a readiness probe; subclasses write the config and the probe."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # subclasses
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _rebind(self) -> None:
        """Pick fresh ports (only before the first successful start)."""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def _start_once(self, timeout_s: float) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServiceError(
                    f"{self.name} exited with code {code} while starting; log "
                    f"{self.log_path}:\n{_tail(self.log_path)}"
                )
            if self._ready():
                return
            time.sleep(0.02)
        self.kill()
        raise ServiceError(
            f"{self.name} not ready after {timeout_s:.0f} s; log {self.log_path}:\n"
            f"{_tail(self.log_path)}"
        )

    def start(self, timeout_s: float = 20.0) -> None:
        """Start (or restart) on the same ports with the same data; return once it answers."""
        if self.running:
            return
        self._start_once(timeout_s)

    def launch(self, timeout_s: float = 20.0, attempts: int = 3) -> Self:
        """The first start; returns the service. Another process may take the free port between
        `free_port()` and the bind, so this retries with fresh ports (a restart keeps its port)."""
        for attempt in range(attempts):
            try:
                self._start_once(timeout_s)
                return self
            except ServiceError:
                if attempt == attempts - 1:
                    raise
                self._rebind()
        raise AssertionError("unreachable")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (a clean shutdown that saves state), then SIGKILL after `timeout_s`."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL, as in a crash: nothing is saved."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._proc = None
        _LIVE.discard(self)

    def log(self) -> str:
        return _tail(self.log_path, 200)


@dataclass(frozen=True, slots=True)
class BrokerCerts:
    """A TLS listener's files: the CA that signs the clients' certificates (and the server's),
    the server's certificate and key; `require_certificate`: refuse clients without one."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = False

    def conf(self) -> str:
        return (
            f"cafile {self.ca}\ncertfile {self.cert}\nkeyfile {self.key}\n"
            f"require_certificate {str(self.require_certificate).lower()}\n"
        )


class MosquittoService(_Service):
    """A Mosquitto broker on ``host:port`` with persistence in its folder (survives restarts)."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        auth: tuple[Path, Path] | None = None,
        tls: BrokerCerts | None = None,
    ) -> None:
        """`auth`: (password file, ACL file) to require users instead of anonymous access.
        `tls`: the listener speaks TLS only, with these certificates."""
        self.binary = _require(MOSQUITTO, "mosquitto")
        self.auth = auth
        self.tls = tls
        super().__init__(workdir)
        self.host = LOOPBACK
        self.port = port or free_port()
        self.conf_path = workdir / "mosquitto.conf"
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self._write_conf()

    def _write_conf(self) -> None:
        # Run as the current user: as root, mosquitto would otherwise drop to user "mosquitto" and
        # lose access to the temporary folder.
        user = pwd.getpwuid(os.getuid()).pw_name
        self.conf_path.write_text(
            f"user {user}\n"
            f"listener {self.port} {self.host}\n"
            + (self.tls.conf() if self.tls else "")
            + (
                f"allow_anonymous false\npassword_file {self.auth[0]}\nacl_file {self.auth[1]}\n"
                if self.auth
                else "allow_anonymous true\n"
            )
            + "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "max_queued_messages 100000\n"
        )

    def _argv(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return _tcp_open(self.host, self.port)

    def _rebind(self) -> None:
        self.port = free_port()
        self._write_conf()

    def __repr__(self) -> str:
        return f"MosquittoService({self.host}:{self.port}, running={self.running})"


class InfluxService(_Service):
    """An InfluxDB 1.x server answering the v1 HTTP API at `url`; data kept across restarts."""

    name = "influxd"

    def __init__(self, workdir: Path, *, auth: bool = False, max_series: int = 1_000_000) -> None:
        """`auth`: require users (`auth-enabled`); make the first, an admin, with `create_admin`.
        `max_series`: `max-series-per-database` (the server's default; 0: none; change it, then
        `_write_conf` and restart)."""
        self.binary = _require(INFLUXD, "influxdb")
        self.auth = auth
        self.max_series = max_series
        super().__init__(workdir)
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.conf_path = workdir / "influxdb.conf"
        self._write_conf()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def _write_conf(self) -> None:
        d = self.workdir
        self.conf_path.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "{LOOPBACK}:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{d / "meta"}"\n'
            "[data]\n"
            f'  dir = "{d / "data"}"\n'
            f'  wal-dir = "{d / "wal"}"\n'
            "  query-log-enabled = false\n"
            f"  max-series-per-database = {self.max_series}\n"
            "[http]\n"
            f'  bind-address = "{LOOPBACK}:{self.http_port}"\n'
            "  log-enabled = false\n"
            f"  auth-enabled = {'true' if self.auth else 'false'}\n"
            "[monitor]\n"
            "  store-enabled = false\n"
            "[ifql]\n"
            "  enabled = false\n"
            "[continuous_queries]\n"
            "  enabled = false\n"
            "[logging]\n"
            '  level = "warn"\n'
        )

    def _argv(self) -> list[str]:
        return [self.binary, "-config", str(self.conf_path)]

    def create_admin(self, user: str, password: str) -> None:
        """The first user of a server with `auth`, an admin (InfluxDB lets it be made unasked)."""
        q = f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        data = urllib.parse.urlencode({"q": q}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=5) as resp:
            assert int(resp.status) == 200, resp.read()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return int(resp.status) == 204
        except (urllib.error.URLError, OSError):
            return False

    def _rebind(self) -> None:
        self.http_port = free_port()
        self.rpc_port = free_port()
        self._write_conf()

    def __repr__(self) -> str:
        return f"InfluxService({self.url}, running={self.running})"
