"""A gateway's counters for Prometheus (`--metrics HOST:PORT`, gateway/metricsserver.py): the JT/T
808 and the Modbus gateways as processes, scraped over real sockets; a token when one is set; an
address other than loopback refused at the start without one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from gateway.metricsserver import FAMILIES, exposition, metrics_problem

from e2e_helpers import eventually
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
jt808_gateways: [jt808]
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat, terminal: "13800000001"}
"""


def test_the_exposition_escapes_what_a_peer_named() -> None:
    text = exposition('gw"1', {"acme\\gps.logins": 3, "a\nb": 1}, {"connections": 2.0}, 1.5)
    assert 'hazardhub_gateway_events_total{gateway="gw\\"1",counter="acme\\\\gps.logins"} 3' in (
        text
    )
    assert 'counter="a\\nb"} 1' in text
    assert 'hazardhub_gateway_state{gateway="gw\\"1",what="connections"} 2' in text
    # a gauge past a million to the unit, as the hub's own (`:g` said 2.68435e+08)
    big = exposition("gw", {"positions": 3_232_290}, {"spool_bytes": 268_435_456.0}, 0.0)
    assert 'counter="positions"} 3232290' in big and 'what="spool_bytes"} 268435456' in big
    assert "# TYPE hazardhub_gateway_events_total counter" in text
    assert all(line.startswith(("#", "hazardhub_gateway_")) for line in text.splitlines())
    served = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert served == set(FAMILIES)  # (the names the docs give a gateway's, not the hub's)


def test_an_address_beyond_loopback_needs_a_token() -> None:
    assert metrics_problem("127.0.0.1", None) is None
    assert metrics_problem("::1", None) is None and metrics_problem("localhost", None) is None
    said = metrics_problem("0.0.0.0", None)
    assert said is not None and "HAZARDHUB_METRICS_TOKEN" in said
    assert metrics_problem("0.0.0.0", "s3cret") is None


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HAZARDHUB_METRICS_TOKEN"}
    return env | more


async def _scrape(port: int, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"http://127.0.0.1:{port}/metrics", headers=headers)


async def _up(port: int) -> bool:
    try:
        await _scrape(port)
    except httpx.TransportError:
        return False
    return True


async def test_the_jt808_gateway_serves_its_counters_with_the_token(mosquitto, tmp_path) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    listen, metrics = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hazardhub", "jt808", "-c", str(cfg)),
        *("--listen", f"127.0.0.1:{listen}", "--broker", f"127.0.0.1:{mosquitto.port}"),
        *("--spool-dir", str(tmp_path / "spool"), "--metrics", f"127.0.0.1:{metrics}"),
        cwd=ROOT,
        env=_env(HAZARDHUB_METRICS_TOKEN="t0ken-0123"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await eventually(lambda: _up(metrics), 20, "the metrics served")
        assert (await _scrape(metrics)).status_code == 401
        assert (await _scrape(metrics, "wrong")).status_code == 401
        # a connection that sends what is no JT/T 808: counted, and open while it lasts
        _, writer = await asyncio.open_connection("127.0.0.1", listen)
        writer.write(b"\x7e\x01\x02\x7e" * 3)
        await writer.drain()

        async def counted() -> str | None:
            r = await _scrape(metrics, "t0ken-0123")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            return r.text if 'what="connections"} 1' in r.text and "counter=" in r.text else None

        text = await eventually(counted, 10, "the bad frames counted, the connection open")
        assert 'hazardhub_gateway_state{gateway="jt808",what="authenticated"} 0' in text
        assert "hazardhub_gateway_start_time_seconds" in text
        writer.close()
        async with httpx.AsyncClient(timeout=5) as client:
            other = await client.get(f"http://127.0.0.1:{metrics}/other")
        assert other.status_code == 404
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "t0ken-0123" not in err.decode()


def test_an_address_beyond_loopback_without_a_token_is_refused_at_the_start(tmp_path) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "hazardhub", "jt808", "-c", str(cfg)),
            *("--listen", f"127.0.0.1:{free_port()}", "--spool-dir", str(tmp_path / "s")),
            *("--metrics", f"0.0.0.0:{free_port()}"),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--metrics 0.0.0.0: an address other than loopback needs a token" in done.stderr


async def test_the_modbus_gateway_serves_its_state_and_says_a_port_taken(
    mosquitto, tmp_path
) -> None:
    metrics = free_port()
    args = [sys.executable, "-m", "hazardhub", "gateway", "-c", str(ROOT / "examples/demo.yaml")]
    args += ["--tenant", "acme-chem", "--gateway", "gw1"]
    args += ["--broker", f"127.0.0.1:{mosquitto.port}", "--spool-dir", str(tmp_path / "spool")]
    proc = await asyncio.create_subprocess_exec(
        *args,
        "--metrics",
        f"127.0.0.1:{metrics}",
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await eventually(lambda: _up(metrics), 20, "the metrics served")

        async def connected() -> str | None:
            text = (await _scrape(metrics)).text
            return text if 'what="broker_connected"} 1' in text else None

        text = await eventually(connected, 10, "the broker connected")
        assert 'hazardhub_gateway_state{gateway="gw1",what="devices"}' in text
        # a second gateway asked for the same metrics address: said, exit 2
        second = subprocess.run(
            [*args[:-1], str(tmp_path / "spool2"), "--metrics", f"127.0.0.1:{metrics}"],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert f"--metrics 127.0.0.1:{metrics}:" in second.stderr
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
