"""The InfluxDB 1.x password kept out of the process list (helper-163's finding 6): the user
with `--influx-user` (or in the URL), the password in `$HAZARDHUB_INFLUX_PASSWORD`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_hub_ends import _hub_argv
from test_hub_start_checks import _hub, _refused

from hazardhub.cliargs import influx_with_login

from services import InfluxService, MosquittoService, free_port

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8086"

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)


@given(user=_text, password=_text)
def test_any_user_and_password_reach_the_client_as_given(user: str, password: str) -> None:
    """`@`, `:`, `/`, `%` and Chinese in either are quoted into the URL and come out of it, as
    the store's client reads it (httpx), unchanged."""
    url = httpx.URL(influx_with_login(f"{BASE}/", user, password))
    assert (url.username, url.password) == (user, password)
    assert (url.host, url.port, url.path) == ("127.0.0.1", 8086, "/")


def test_the_user_from_the_url_or_the_flag_and_the_password_once() -> None:
    assert influx_with_login(BASE, None, None) == BASE
    assert influx_with_login(f"http://hub:pw@{BASE[7:]}", None, None) == f"http://hub:pw@{BASE[7:]}"
    assert influx_with_login(f"http://hub@{BASE[7:]}", None, "pw") == f"http://hub:pw@{BASE[7:]}"
    assert influx_with_login(BASE, "hub", "pw") == f"http://hub:pw@{BASE[7:]}"
    refusals = [
        ((f"http://hub@{BASE[7:]}", "hub", "pw"), "give the InfluxDB user once"),
        ((BASE, "hub", None), "set the password in $HAZARDHUB_INFLUX_PASSWORD"),
        ((f"http://hub:pw@{BASE[7:]}", None, "pw"), "give it once"),
        ((BASE, None, "pw"), "without a user"),
    ]
    for args, said in refusals:
        with pytest.raises(ValueError, match=said.replace("$", r"\$")):
            influx_with_login(*args)


def test_a_user_without_its_password_stops_the_hub_at_start(tmp_path: Path) -> None:
    argv = _hub(tmp_path, "--influx", BASE, "--influx-user", "hub")
    env = {k: v for k, v in os.environ.items() if k != "HAZARDHUB_INFLUX_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "hazardhub", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (
        "hazardhub hub: --influx-user: set the password in $HAZARDHUB_INFLUX_PASSWORD"
    )
    line = _refused(_hub(tmp_path, "--influx-user", "hub"))
    assert line == "hazardhub hub: --influx-user needs --influx", line


def test_a_hub_logs_in_to_influxdb_with_the_password_from_the_environment_alone(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """An auth-enabled InfluxDB 1.x: the hub started with `--influx-user` and the password in
    the environment is ready (the store's set-up answered, not 401), and the password is in
    no process's command line nor in the log."""
    secret = "Pw:with@odd/chars-99"
    server = InfluxService(tmp_path / "influx", auth=True).launch()
    log, api = tmp_path / "hub.log", free_port()
    try:
        server.create_admin("hub", secret)
        argv = [*_hub_argv(tmp_path, mosquitto.port, api), "--influx", server.url]
        argv += ["--influx-user", "hub"]
        env = {**os.environ, "HAZARDHUB_INFLUX_PASSWORD": secret, "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            hub = subprocess.Popen(
                [sys.executable, "-m", "hazardhub", *argv],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            status = 0
            deadline = time.monotonic() + 30
            while status != 200 and time.monotonic() < deadline and hub.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=2) as r:
                        status = int(r.status)
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            assert status == 200, log.read_text()[-3000:]
            cmdline = Path(f"/proc/{hub.pid}/cmdline").read_bytes().decode()
            assert secret not in cmdline and "hub" in cmdline
        finally:
            hub.terminate()
            hub.wait(timeout=15)
    finally:
        server.stop()
    assert secret not in log.read_text()
