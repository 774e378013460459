"""MQTT over TLS (helper-149, finding 8): the hub, the Modbus and JT/T 808 gateways and the fleet
simulator reach a Mosquitto TLS listener with `--broker-ca` (and `--broker-cert/--broker-key`
where the broker requires a client certificate), as processes; the broker's certificate is
checked, and files that cannot be used are said in one line at start."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.brokertls import BrokerTls, BrokerTlsError

from e2e_helpers import ROOT, interrupt
from services import BrokerCerts, MosquittoService, free_port


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server: BrokerCerts  # its files for a broker (no client certificate required)
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of them


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _signed(folder: Path, name: str, ca: Path, ca_key: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extfile),
             "-out", str(cert))  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, the broker's certificate for 127.0.0.1 signed by it, a client certificate signed
    by it, and another CA."""
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", f"/CN=hazardhub test {name}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"))  # fmt: skip
    ca, ca_key = d / "ca.pem", d / "ca.key"
    cert, key = _signed(d, "broker", ca, ca_key, "subjectAltName=IP:127.0.0.1")
    client_cert, client_key = _signed(d, "hub", ca, ca_key, "extendedKeyUsage=clientAuth")
    return Pki(ca, BrokerCerts(ca, cert, key), client_cert, client_key, d / "other-ca.pem")


@pytest.fixture
def tls_broker(pki: Pki, tmp_path: Path) -> Iterator[MosquittoService]:
    broker = MosquittoService(tmp_path / "mq", tls=pki.server).launch()
    try:
        yield broker
    finally:
        broker.stop()


KEY = "hh_" + secrets.token_urlsafe(16)


def _config(modbus_port: int) -> str:
    return f"""
version: 1
api_keys:
  - {{name: op, sha256: {hashlib.sha256(KEY.encode()).hexdigest()}, role: operator}}
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: kj-sub-3
            profile: coal-substation
            gateway: gw1
            modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: 1, poll_s: 0.25, timeout_s: 0.5}}
            sensors:
              - {{id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}}
              - {{id: feed, point: feed, kind: power_feed}}
  - id: acme-chem
    vehicles:
      - {{id: tanker-01, plate: 苏A·D1234, class: hazmat}}
"""


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hazardhub", *argv],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _hub(cfg: Path, data: Path, broker: MosquittoService, api: int, *tls: str) -> list[str]:
    return [
        *("hub", "-c", str(cfg), "--data-dir", str(data)),
        *("--broker", f"127.0.0.1:{broker.port}", "--api", f"127.0.0.1:{api}", *tls),
    ]


def _until(probe, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _started(log: Path) -> None:
    """The hub's process has said it starts: its imports done (4 s on a quiet machine, over 20
    at a load of 11 with two hubs starting), what a test then waits for is the hub's own doing."""
    _until(lambda: "hub starting" in log.read_text(), 90, "the hub's start: " + str(log))


def _said_at(line: str) -> float:
    """The time (s) a line of the hub's log was said, from its time stamp."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()


def _readyz(api: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=2)
    except httpx.HTTPError:
        return None


def _ready(api: int) -> bool:
    r = _readyz(api)
    return r is not None and r.status_code == 200


def _alarms(api: int) -> list[dict[str, object]]:
    try:
        r = httpx.get(
            f"http://127.0.0.1:{api}/api/v1/alarms",
            params={"sensor": "ch4-t1"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=2,
        )
    except httpx.HTTPError:
        return []
    return r.json() if r.status_code == 200 else []


@pytest.mark.slow
async def test_a_gateway_and_the_hub_over_tls_raise_the_alarm(
    pki: Pki, tls_broker: MosquittoService, tmp_path: Path
) -> None:
    """The hub (`--broker-ca`) judges the readings a Modbus gateway (`--broker-ca`) published
    over the broker's TLS listener: methane at 2 % raises the face's alarm."""
    from hazardhub.settings import load_profiles

    profiles, _ = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "coal-substation")
    sim = ModbusSimServer(
        [SimulatedDevice(prof, 1, {"ch4_t1": Constant(2.0), "feed": Constant(1)}, lambda: 0.0)]
    )
    await sim.start()
    cfg = tmp_path / "site.yaml"
    cfg.write_text(_config(sim.port))
    api, ca = free_port(), ("--broker-ca", str(pki.ca))
    hub = _start(_hub(cfg, tmp_path / "hub", tls_broker, api, *ca), tmp_path / "hub.log")
    gw = _start(
        [
            *("gateway", "-c", str(cfg), "--tenant", "north-coal", "--gateway", "gw1"),
            *("--broker", f"127.0.0.1:{tls_broker.port}", "--spool-dir", str(tmp_path / "sp")),
            *ca,
        ],
        tmp_path / "gw.log",
    )
    try:
        loop = asyncio.get_running_loop()  # the simulator serves in this loop: wait beside it
        alarms = await loop.run_in_executor(
            None,
            lambda: _until(
                lambda: [a for a in _alarms(api) if a["state"] == "active"],
                30,
                "the methane alarm at the hub: "
                + (tmp_path / "hub.log").read_text()[-2000:]
                + (tmp_path / "gw.log").read_text()[-2000:],
            ),
        )
        assert alarms[0]["level_name"] in ("alarm", "power_cut")
        assert _ready(api)
    finally:
        interrupt(gw)
        interrupt(hub)
        await sim.stop()
    text = (tmp_path / "hub.log").read_text()
    assert "Traceback" not in text and "unreachable" not in text, text[-3000:]


def test_the_hub_without_the_ca_says_the_certificate_and_is_not_ready(
    pki: Pki, tls_broker: MosquittoService, tmp_path: Path
) -> None:
    """A broker certificate the hub does not trust (the system's CAs, or another CA): a line
    naming the certificate's failure, no traceback, and /readyz says not ready."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(_config(free_port()))
    # both hubs at once (each start is seconds of the suite), each with its own log
    hubs: list[tuple[subprocess.Popen[bytes], int, Path]] = []
    try:
        for n, tls in enumerate((["--broker-tls"], ["--broker-ca", str(pki.other_ca)])):
            api, log = free_port(), tmp_path / f"hub{n}.log"
            hubs.append(
                (_start(_hub(cfg, tmp_path / f"hub{n}", tls_broker, api, *tls), log), api, log)
            )
        for _, api, log in hubs:
            _started(log)
            _until(
                lambda lg=log: "certificate verify failed" in lg.read_text(), 20, log.read_text()
            )
            r = _until(lambda a=api: _readyz(a), 20, "the API: " + log.read_text()[-3000:])
            # the cause's code to a probe (the reason in full is the centre's admin's)
            assert (r.status_code, r.text) == (503, "not ready: broker\n"), r.text
    finally:
        for hub, _, _ in hubs:
            interrupt(hub)
    for _, _, log in hubs:
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        [said, *_] = [line for line in text.splitlines() if "certificate verify failed" in line]
        assert "WARNING" in said and "hub: broker unreachable" in said, said


def test_a_broker_requiring_client_certificates(pki: Pki, tmp_path: Path) -> None:
    """`require_certificate true`: the hub with --broker-cert/--broker-key is served; without a
    client certificate it is refused (not ready)."""
    certs = BrokerCerts(pki.ca, pki.server.cert, pki.server.key, require_certificate=True)
    broker = MosquittoService(tmp_path / "mq", tls=certs).launch()
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(_config(free_port()))
    log = tmp_path / "hub.log"
    try:
        api = free_port()
        with_cert = ("--broker-ca", str(pki.ca))
        with_cert += ("--broker-cert", str(pki.client_cert), "--broker-key", str(pki.client_key))
        hub = _start(_hub(cfg, tmp_path / "a", broker, api, *with_cert), log)
        try:
            _started(log)
            _until(lambda: _ready(api), 20, "the hub served: " + log.read_text()[-3000:])
        finally:
            interrupt(hub)
        log.write_text("")
        api = free_port()
        hub = _start(_hub(cfg, tmp_path / "b", broker, api, "--broker-ca", str(pki.ca)), log)
        try:
            # said at once, naming the refusal (it was "timed out" after the 10 s wait for the
            # broker's CONNACK: the broker refuses after the handshake, at the first read)
            _started(log)
            _until(lambda: "hub: broker unreachable" in log.read_text(), 20, log.read_text())
            lines = log.read_text().splitlines()
            [start, *_] = [x for x in lines if "hub starting" in x]
            [said, *_] = [x for x in lines if "broker unreachable" in x]
            # by the hub's clock (its start took longer than 8 s itself on a loaded machine)
            assert _said_at(said) - _said_at(start) < 8, log.read_text()[-3000:]
            assert "ended the connection before its CONNACK" in said, said
            assert "CERTIFICATE_REQUIRED" in said, said
            r = _until(lambda: _readyz(api), 20, "the API: " + log.read_text()[-3000:])
            assert r.status_code == 503, r.text
        finally:
            interrupt(hub)
    finally:
        broker.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_the_jt808_gateway_and_the_fleet_reach_a_tls_broker(pki: Pki, tmp_path: Path) -> None:
    """The JT/T 808 gateway's three connections (positions, status, the hub's commands) and the
    fleet simulator's connect to a broker that requires client certificates."""
    certs = BrokerCerts(pki.ca, pki.server.cert, pki.server.key, require_certificate=True)
    broker = MosquittoService(tmp_path / "mq", tls=certs).launch()
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(_config(free_port()) + "jt808_gateways: [jt808]\n")
    tls = ("--broker-ca", str(pki.ca), "--broker-cert", str(pki.client_cert))
    tls += ("--broker-key", str(pki.client_key))
    at = ("--broker", f"127.0.0.1:{broker.port}")
    jt = _start(
        ["jt808", "-c", str(cfg), "--listen", f"127.0.0.1:{free_port()}", *at, *tls,
         "--spool-dir", str(tmp_path / "jt")],
        tmp_path / "jt.log",
    )  # fmt: skip
    fleet = _start(["simulate", "fleet", "-c", str(cfg), *at, *tls], tmp_path / "fleet.log")
    try:
        wanted = (
            "hazardhub-jt808-jt808 ",  # the positions' uplink
            "hazardhub-jt808-jt808-commands ",
            "hazardhub-jt808-jt808-status-acme-chem ",  # its status in the vehicles' tenant
            "hazardhub-sim-fleet-",
        )

        def connected() -> bool:
            text = broker.log_path.read_text()
            return all(f"as {who}" in text for who in wanted)

        _until(connected, 20, broker.log_path.read_text()[-3000:])
    finally:
        interrupt(fleet)
        interrupt(jt)
        broker.stop()
    said = (tmp_path / "jt.log").read_text() + (tmp_path / "fleet.log").read_text()
    assert "unreachable" not in said and "Traceback" not in said, said[-3000:]


@pytest.mark.parametrize(
    "command",
    [
        ["hub", "--api", "127.0.0.1:0"],
        ["gateway", "--tenant", "north-coal", "--gateway", "gw1"],
        ["jt808"],
        ["simulate", "fleet"],
    ],
)
def test_a_tls_file_that_cannot_be_used_stops_the_start_in_one_line(
    command: list[str], pki: Pki, tmp_path: Path
) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(_config(free_port()) + "jt808_gateways: [jt808]\n")
    where = ["-c", str(cfg), "--broker", "127.0.0.1:1"]
    if command[0] in ("hub", "gateway", "jt808"):
        where += ["--data-dir" if command[0] == "hub" else "--spool-dir", str(tmp_path / "d")]
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("no certificate\n")
    cases = [
        (["--broker-ca", str(tmp_path / "nowhere.pem")], "--broker-ca"),
        (["--broker-ca", str(not_pem)], "no CA certificate"),
        (["--broker-cert", str(pki.client_cert)], "--broker-cert and --broker-key go together"),
        (["--broker-cert", str(not_pem), "--broker-key", str(pki.client_key)], "not a cert"),
    ]
    # every command reads its TLS files through one check (`hazardhub.cliargs.broker_tls`): the
    # hub's start tries each file's fault, the others' one (a process start is ~1 s of the suite)
    # (and the hub's starts run at once)
    tried = cases if command[0] == "hub" else cases[1:2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hazardhub", *command, *where, *tls],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tls, _ in tried
    ]
    try:
        for proc, (tls, said) in zip(procs, tried, strict=True):
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 2, (tls, stderr[-2000:])
            [line] = stderr.strip().splitlines()
            assert line.startswith(f"hazardhub {command[0]}: ") and said in line, line
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_tls_settings_check_their_files(pki: Pki, tmp_path: Path) -> None:
    tls = BrokerTls.load(pki.ca, pki.client_cert, pki.client_key)
    assert tls.context.check_hostname and "client certificate" in tls.describe()
    with pytest.raises(BrokerTlsError, match="cannot read"):
        BrokerTls.load(tmp_path / "missing.pem")
    # an encrypted key: refused in one line (OpenSSL asked for its pass phrase on the terminal)
    locked = tmp_path / "locked.key"
    key = str(pki.client_key)
    _openssl("rsa", "-in", key, "-aes256", "-passout", "pass:x", "-out", str(locked))
    with pytest.raises(BrokerTlsError, match="not a certificate and its private key"):
        BrokerTls.load(pki.ca, pki.client_cert, locked)


async def test_a_gateway_without_the_required_client_certificate_keeps_mqtt5(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that requires a client certificate ends a connection without one after the TLS
    handshake, before any CONNACK: the uplink took that silence for a broker that does not
    speak MQTT 5 and spoke 3.1.1 from then on (losing the PUBACK's refusals) even once given
    its certificate. It says the connection ended, at once, and keeps MQTT 5."""
    import aiomqtt

    from gateway.publisher import MqttPublisher
    from gateway.spool import Spool
    from telemetry.topics import TopicLayout

    certs = BrokerCerts(pki.ca, pki.server.cert, pki.server.key, require_certificate=True)
    broker = MosquittoService(tmp_path / "mq", tls=certs).launch()
    spool = Spool(tmp_path / "spool.db", clock_ms=lambda: time.time_ns() // 1_000_000)
    try:
        for tls in (
            BrokerTls.load(pki.ca),
            BrokerTls.load(pki.ca, pki.client_cert, pki.client_key),
        ):
            pub = MqttPublisher(
                "127.0.0.1",
                broker.port,
                tenant="north-coal",
                gateway="gw1",
                layout=TopicLayout(),
                spool=spool,
                tls=tls,
                backoff_max_s=0.5,
            )
            stop = asyncio.Event()
            run = asyncio.create_task(pub.run(stop))
            try:
                async with asyncio.timeout(8):
                    if tls.cert is None:
                        while "broker unreachable" not in caplog.text:
                            await asyncio.sleep(0.05)
                        await asyncio.sleep(3.5)  # past the first CONNACK's wait (3 s)
                    else:
                        await pub.connected.wait()
            finally:
                stop.set()
                await run
            assert pub.protocol is aiomqtt.ProtocolVersion.V5, caplog.text
        assert "does not speak MQTT 5" not in caplog.text, caplog.text
        assert "before its CONNACK" in caplog.text, caplog.text
    finally:
        spool.close()
        broker.stop()
