"""Every process we ship, stopped while it waits for its broker's CONNACK, ends at once: a broker
that accepts TCP and never answers (a plain listening socket here) held a SIGTERM'd hub, gateway,
JT/T 808, JT/T 809 or mine-files gateway until aiomqtt's connect timeout (10 s) ran out.

Each process is stopped while a connection of 10 s is under way: the hub's first (aiomqtt's
timeout), a gateway's uplink's second (its first waits 3 s for an MQTT 5 CONNACK, the next 10 s;
the JT/T 808 and 809 gateways' command listeners are in their first of 10 s meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from jt809_helpers import PLATFORMS

from gateway.jt808.presence import Presence
from telemetry.topics import TopicLayout

from minefiles_rig import HUB_YAML, MINE
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
STOPPED_WITHIN_S = 5.0  # well under the 10 s connect timeout the processes wait out otherwise


class SilentBroker:
    """Accepts TCP connections, reads each one's CONNECT and never answers; counts the CONNECTs
    by client id, and the connections the clients closed."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.connects: Counter[str] = Counter()
        self.closed = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            self._held.append(conn)
            threading.Thread(target=self._read_connect, args=(conn,), daemon=True).start()

    def _read_connect(self, conn: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            while (client := _client_id(data)) is None:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            with self._lock:
                self.connects[client] += 1
            while conn.recv(4096):
                pass
            with self._lock:
                self.closed += 1

    def most_connects(self) -> int:
        """The most CONNECTs one client sent."""
        with self._lock:
            return max(self.connects.values(), default=0)

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


def _varint(data: bytes, at: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    return None


def _client_id(data: bytes) -> str | None:
    """The client id of the MQTT CONNECT `data` begins with, or None while it is incomplete."""
    head = _varint(data, 1)
    if head is None or len(data) < head[0] + head[1]:
        return None
    at = head[1]
    at += 2 + int.from_bytes(data[at : at + 2], "big")  # the protocol's name
    level = data[at]
    at += 4  # level, flags, keepalive
    if level == 5:
        props = _varint(data, at)
        assert props is not None
        at = props[1] + props[0]
    size = int.from_bytes(data[at : at + 2], "big")
    return data[at + 2 : at + 2 + size].decode()


@pytest.fixture
def silent() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    try:
        yield broker
    finally:
        broker.close()


def _stopped_while_connecting(argv: list[str], log: Path, connecting: Callable[[], bool]) -> None:
    """Run `hazardhub *argv` until `connecting()`, then SIGTERM it: it ends with 0, at once."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hazardhub", *argv],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 60  # (a start on a loaded machine is slow)
        while not connecting() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        assert connecting(), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("not ended 30 s after SIGTERM:\n" + log.read_text()[-3000:])
        took = time.monotonic() - began
        assert code == 0, log.read_text()[-3000:]
        assert took < STOPPED_WITHIN_S, f"{took:.1f} s\n" + log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_the_hub(silent: SilentBroker, tmp_path: Path) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text("version: 1\ntenants:\n  - id: north-coal\n", encoding="utf-8")
    argv = [
        *("hub", "-c", str(cfg), "--data-dir", str(tmp_path / "hub")),
        *("--broker", f"127.0.0.1:{silent.port}", "--api", f"127.0.0.1:{free_port()}"),
    ]
    _stopped_while_connecting(argv, tmp_path / "hub.log", lambda: silent.most_connects() >= 1)
    assert "hub stopped" in (tmp_path / "hub.log").read_text()


async def test_the_jt808_gateways_status_connection(silent: SilentBroker) -> None:
    """The JT/T 808 gateway's status connections (`Presence`) connect once its uplink is up:
    a stop meanwhile ends them at once too, their sockets closed."""
    uplink, lost, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    uplink.set()
    presence = Presence(
        "127.0.0.1",
        silent.port,
        layout=TopicLayout(),
        tenants=("chem-logistics",),
        gateway="jt808",
        uplink_connected=uplink,
        uplink_lost=lost,
    )
    task = asyncio.create_task(presence.run(stop))
    for _ in range(200):
        if silent.most_connects() >= 1:
            break
        await asyncio.sleep(0.05)
    assert silent.most_connects() == 1
    stop.set()
    await asyncio.wait_for(task, STOPPED_WITHIN_S)
    for _ in range(100):
        if silent.closed == 1:
            break
        await asyncio.sleep(0.02)
    assert silent.closed == 1  # not left open for a broker to wait on


def _uplink_retrying(silent: SilentBroker) -> Callable[[], bool]:
    return lambda: silent.most_connects() >= 2


def test_the_modbus_gateway(silent: SilentBroker, tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        f"""
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: kj-sub-3
            profile: coal-substation
            gateway: gw1
            modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1, poll_s: 1, timeout_s: 0.5}}
            sensors:
              - {{id: feed, point: feed, kind: power_feed}}
""",
        encoding="utf-8",
    )
    argv = [
        *("gateway", "-c", str(cfg), "--tenant", "north-coal", "--gateway", "gw1"),
        *("--broker", f"127.0.0.1:{silent.port}", "--spool-dir", str(tmp_path / "spool")),
    ]
    _stopped_while_connecting(argv, tmp_path / "gw.log", _uplink_retrying(silent))


def test_the_jt808_gateway(silent: SilentBroker, tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text(
        "version: 1\ntenants:\n  - id: chem-logistics\n    vehicles:\n"
        '      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}\n',
        encoding="utf-8",
    )
    argv = [
        *("jt808", "-c", str(cfg), "--listen", "127.0.0.1:0"),
        *("--broker", f"127.0.0.1:{silent.port}", "--spool-dir", str(tmp_path / "spool")),
    ]
    _stopped_while_connecting(argv, tmp_path / "jt808.log", _uplink_retrying(silent))


def test_the_jt809_gateway(silent: SilentBroker, tmp_path: Path) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(
        "version: 1\njt808_gateways: [jt808, jt809]\ntenants:\n  - id: chem-logistics\n"
        "    vehicles:\n      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}\n"
        "  - id: coach-co\n",
        encoding="utf-8",
    )
    plats = tmp_path / "jt809.yaml"
    plats.write_text(yaml.safe_dump(PLATFORMS, allow_unicode=True), encoding="utf-8")
    plats.chmod(0o600)
    argv = [
        *("jt809", "-c", str(cfg), "--platforms", str(plats)),
        *("--listen", f"127.0.0.1:{free_port()}", "--broker", f"127.0.0.1:{silent.port}"),
        *("--spool-dir", str(tmp_path / "spool")),
    ]
    _stopped_while_connecting(argv, tmp_path / "jt809.log", _uplink_retrying(silent))


def test_the_mine_files_gateway(silent: SilentBroker, tmp_path: Path) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(HUB_YAML, encoding="utf-8")
    (tmp_path / "ftp" / MINE).mkdir(parents=True)
    mines = tmp_path / "mines.yaml"
    mines.write_text(
        f"incoming: {tmp_path / 'ftp'}\nmines:\n  '{MINE}': "
        "{tenant: north-coal, site: face-1301, points: {001A01: t2-return}}\n",
        encoding="utf-8",
    )
    argv = [
        *("mine-files", "-c", str(cfg), "--mines", str(mines)),
        *("--state-dir", str(tmp_path / "state"), "--broker", f"127.0.0.1:{silent.port}"),
    ]
    _stopped_while_connecting(argv, tmp_path / "mines.log", _uplink_retrying(silent))
