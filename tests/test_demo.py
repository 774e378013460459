"""`hazardhub demo` as a user runs it: a subprocess, read the alarm over HTTP, stop with SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services import free_port

ROOT = Path(__file__).resolve().parent.parent


def _start(data_dir: Path, api_port: int, log, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "demo", "--api", f"127.0.0.1:{api_port}"),
            *("--data-dir", str(data_dir), "--broker-port", str(free_port()), *extra),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _site(api_port: int, headers: dict[str, str]) -> dict | None:
    url = f"http://127.0.0.1:{api_port}/api/v1/registry/tenants/north-coal/sites/face-1301"
    try:
        r = httpx.get(url, headers=headers, timeout=5)
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None


def _wait_site(proc: subprocess.Popen, api_port: int, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"demo exited early with {proc.returncode}"
        site = _site(api_port, headers)
        if site is not None:
            return site
        time.sleep(0.2)
    raise AssertionError("the demo's API did not answer within 60 s")


def _methane_alarm(proc: subprocess.Popen, api_port: int, headers: dict[str, str]) -> dict:
    """The demo's methane alarm at the face, read over HTTP (within 90 s)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"demo exited early with {proc.returncode}"
        try:
            r = httpx.get(
                f"http://127.0.0.1:{api_port}/api/v1/alarms",
                params={"sensor": "face1301-ch4-t1"},
                headers=headers,
                timeout=5,
            )
        except httpx.TransportError:
            time.sleep(0.25)
            continue
        assert r.status_code == 200, r.text
        # its level alarm (a machine slow to start the demo's gateway may add a no-data one)
        alarms = [
            a for a in r.json() if a["rule"] == "coal-methane.face-t1" and a["side"] == "above"
        ]
        if alarms:
            return alarms[0]
        time.sleep(0.25)
    raise AssertionError("no methane alarm within 90 s")


@pytest.mark.slow
def test_demo_raises_the_methane_alarm_stops_cleanly_and_keep_data_runs_the_changed_config(
    tmp_path,
):
    """One demo run (a demo's start is ~10 s of the suite): it raises the methane alarm, read
    over HTTP, and stops cleanly at SIGINT. Its simulators listen on the configured ports when
    they are free, so the configuration runs as written and a change made through the API is
    taken up again by `--keep-data` (the file's digest no longer changed with random ports on
    every run)."""
    api_port = free_port()
    data_dir = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("a+")
    proc = _start(data_dir, api_port, log)
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "api-key").exists():
            assert proc.poll() is None, f"demo exited early with {proc.returncode}"
            assert time.monotonic() < deadline, "no API key written within 60 s"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {(data_dir / 'api-key').read_text().strip()}"}
        found = _methane_alarm(proc, api_port, headers)
        assert found["tenant"] == "north-coal"
        assert found["events"][0]["kind"] == "raised"
        assert found["events"][0]["value"] >= 1.0
        # unauthenticated requests are refused
        assert httpx.get(f"http://127.0.0.1:{api_port}/api/v1/alarms").status_code == 401
        site = _wait_site(proc, api_port, headers)
        site["name"] = "renamed through the API"
        url = f"http://127.0.0.1:{api_port}/api/v1/registry/tenants/north-coal/sites/face-1301"
        r = httpx.put(url, json=site, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        code = _stop(proc)
    log.seek(0)
    output = log.read()
    assert code == 0, output[-3000:]
    assert "demo stopped cleanly" in output
    proc = _start(data_dir, api_port, log, "--keep-data")
    try:
        name = _wait_site(proc, api_port, headers)["name"]
        log.seek(0)
        if name != "renamed through the API" and "simulator port moved" in log.read():
            pytest.skip("a configured simulator port was taken by another process meanwhile")
        assert name == "renamed through the API"
    finally:
        assert _stop(proc) == 0
    log.seek(0)
    assert "Traceback" not in log.read()


@pytest.mark.parametrize("command", ["demo", "hub"])
def test_an_api_port_in_use_is_said_in_one_line_before_anything_starts(tmp_path, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [sys.executable, "-m", "hazardhub", command, "--api", f"127.0.0.1:{port}"]
        args += ["--data-dir", str(tmp_path / "data")]
        if command == "hub":
            args += ["-c", str(ROOT / "examples" / "demo.yaml"), "--broker", "127.0.0.1:1"]
        done = subprocess.run(
            args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"hazardhub {command}: the API address 127.0.0.1:{port} is not free (Address already "
        "in use): another hub or demo may be running; give another with --api HOST:PORT"
    ]
    assert not (tmp_path / "data" / "state.db").exists()  # nothing started


def _demo(config: Path, tmp_path: Path, api_port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "hazardhub", "demo", "--config", str(config)),
            *("--api", f"127.0.0.1:{api_port}", "--data-dir", str(tmp_path / "demo")),
            *("--broker-port", str(free_port())),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_demo_of_ones_own_serves_rtu_over_tcp_devices_in_rtu_frames(tmp_path):
    """`hazardhub demo --config own.yaml` served every device as Modbus TCP: a crane behind a
    serial device server (`transport: rtu-over-tcp`) read CRC errors and comm loss (helper-179).
    Its gateway now reads good values; a device on a serial line is refused in one line."""
    text = (ROOT / "examples" / "crane.yaml").read_text(encoding="utf-8")
    own = tmp_path / "crane-rtu.yaml"
    own.write_text(
        text.replace(
            "modbus: {host: 127.0.0.1, port: 15041,",
            f"modbus: {{transport: rtu-over-tcp, host: 127.0.0.1, port: {free_port()},",
        ),
        encoding="utf-8",
    )
    api_port = free_port()
    proc = _demo(own, tmp_path, api_port)
    good = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not good:
            assert proc.poll() is None, f"demo exited early with {proc.returncode}"
            time.sleep(0.5)
            key_file = tmp_path / "demo" / "api-key"
            if not key_file.exists():
                continue
            headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
            try:
                r = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/latest", headers=headers)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                good = [x for x in r.json() if x["quality"] == 0 and x["value"] is not None]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert good, out
    assert "CRC" not in out, out

    serial = tmp_path / "crane-serial.yaml"
    serial.write_text(
        text.replace(
            "modbus: {host: 127.0.0.1, port: 15041,",
            "modbus: {transport: rtu, serial: {port: /dev/ttyUSB0}, ",
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "hazardhub", "demo", "--config", str(serial)),
            *("--api", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "demo2")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "transport 'rtu' (a serial line)" in done.stderr and "Traceback" not in done.stderr


def test_a_run_without_keep_data_starts_without_the_last_runs_state(tmp_path):
    """A demo run again without `--keep-data` took up the analytics state of the run before:
    each vehicle's last fix, minutes and kilometres from where the new run starts it, read as
    a jump (three 定位漂移 drift alarms at 1,207-2,862 km/h at every start, helper-240)."""
    from hazardhub.demo import empty_stores

    gone = ["analytics-state.npz", "ingest-seqs.jsonl", "registry.db", "registry.db-wal"]
    gone += ["state.db", "state.db-shm", "state-outbox.db", "timeseries.db", "spool/gw-1.db"]
    (tmp_path / "spool").mkdir()
    for name in [*gone, "api-key"]:
        (tmp_path / name).write_bytes(b"x")
    empty_stores(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["api-key"]
