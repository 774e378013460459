"""What `hazardhub hub` (and a gateway) refuse at start, in one line and exit status 2, before
anything runs (helper-149's findings 10 and 12); `--version` and what the hub's start says it
runs (finding 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hub_ends import _hub_argv

from hazardhub.cliargs import influx_url_problem

from services import MosquittoService, free_port

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """version: 1
tenants:
  - id: north-coal
"""


def _refused(argv: list[str]) -> str:
    """The one line a start of `hazardhub` refused with (exit status 2) says."""
    [line] = _all_refused([argv])
    return line


def _all_refused(argvs: list[list[str]]) -> list[str]:
    """`_refused` of each start, the starts run at once (each is seconds of the suite)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hazardhub", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    lines = []
    try:
        for proc in procs:
            _, stderr = proc.communicate(timeout=30)  # a start not refused runs on
            assert proc.returncode == 2, stderr[-3000:]
            [line] = stderr.strip().splitlines()
            assert "Traceback" not in stderr
            lines.append(line)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return lines


def _hub(tmp_path: Path, *more: str) -> list[str]:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG)
    return [
        *("hub", "-c", str(cfg), "--broker", "127.0.0.1:1", "--api", f"127.0.0.1:{free_port()}"),
        *more,
    ]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("127.0.0.1:57197", "not an InfluxDB URL"),
        ("localhost:8086", "not an InfluxDB URL"),
        ("ftp://127.0.0.1:8086", "not an InfluxDB URL"),
        ("http://", "not an InfluxDB URL"),
        ("http://127.0.0.1:80x6", "not a URL"),
        ("admin:s3cret@127.0.0.1:8086", "not an InfluxDB URL"),
        ("http://127.0.0.1:8086/?u=admin&p=s3cret", "takes no query"),
        ("http://admin:s3cret@127.0.0.1:8086/#x", "takes no query"),
    ],
)
def test_an_influx_url_without_http_is_refused(url: str, said: str) -> None:
    """helper-149: `--influx 127.0.0.1:57197` was taken for an InfluxDB away: the hub said
    ready and spooled for ever. What the start says of each (the start itself: below)."""
    line = influx_url_problem(url)
    assert line is not None and line.startswith("--influx ") and said in line, line
    assert "s3cret" not in line
    assert influx_url_problem("http://admin:s3cret@127.0.0.1:8086") is None


def test_a_hub_given_an_influx_url_without_http_stops_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    line = _refused(_hub(tmp_path, "--data-dir", str(data), "--influx", "127.0.0.1:57197"))
    assert line.startswith("hazardhub hub: --influx ") and "not an InfluxDB URL" in line, line
    assert not data.exists()  # nothing started


def test_a_hub_start_refused_imports_neither_the_hub_nor_its_api(tmp_path: Path) -> None:
    """A start refused for its arguments or folders imported the hub and its API first
    (seconds) and only then said why: the checks come before."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    code = (
        "import sys; from hazardhub.cli import main; rc = main(sys.argv[1:]); "
        "print(rc, *(m in sys.modules for m in ('hazardhub.hub', 'api.app', 'hazardhub.demo')))"
    )
    procs = [  # at once (each is a second of the suite)
        subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in (
            _hub(tmp_path, "--influx", "127.0.0.1:57197"),
            _hub(tmp_path, "--data-dir", str(a_file)),
            ["demo", "--data-dir", str(a_file)],
        )
    ]
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert out.split() == ["2", "False", "False", "False"], (proc.args, err[-3000:])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


GATEWAY_CONFIG = """version: 1
jt808_gateways: [jt808]
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: kj-sub-3
            profile: coal-substation
            gateway: gw1
            modbus: {host: 127.0.0.1, port: 1502, unit: 1}
            sensors:
              - {id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}
"""


def test_a_data_folder_that_is_a_file_or_under_one_is_refused_at_start(tmp_path: Path) -> None:
    """helper-149: a traceback (PermissionError, NotADirectoryError) and exit status 1."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    under = a_file / "data"
    # the InfluxDB spool's folder (checked before the store is reached)
    spool = ("--spool-dir", str(under), "--influx", "http://127.0.0.1:1")
    is_file, under_file, spool_under_file = _all_refused(
        [
            _hub(tmp_path, "--data-dir", str(a_file)),
            _hub(tmp_path, "--data-dir", str(under)),
            _hub(tmp_path, "--data-dir", str(tmp_path / "data"), *spool),
        ]
    )
    assert is_file == f"hazardhub hub: --data-dir {a_file}: it is a file, not a folder", is_file
    assert under_file == (
        f"hazardhub hub: --data-dir {under}: cannot make or write the folder: Not a directory"
    ), under_file
    assert spool_under_file.startswith(f"hazardhub hub: --spool-dir {under}: cannot make"), (
        spool_under_file
    )


@pytest.mark.parametrize("command", ["gateway", "jt808"])
def test_a_gateways_spool_folder_under_a_file_is_refused_at_start(
    command: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text(GATEWAY_CONFIG)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    under = a_file / "spool"
    which = ["--tenant", "north-coal", "--gateway", "gw1"] if command == "gateway" else []
    line = _refused(
        [command, "-c", str(cfg), *which, "--broker", "127.0.0.1:1", "--spool-dir", str(under)]
    )
    assert line == (
        f"hazardhub {command}: --spool-dir {under}: cannot make or write the folder: "
        "Not a directory"
    ), line


def test_hazardhub_version() -> None:
    from hazardhub.version import version

    done = subprocess.run(
        [sys.executable, "-m", "hazardhub", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == f"hazardhub {version()}"
    assert version()[0].isdigit()


def test_the_hubs_start_log_says_what_it_runs_and_no_password(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """helper-149: the start log said neither the version nor the store, the InfluxDB URL, the
    API address or the data folder. Said in two lines; the InfluxDB URL's user:password, the
    token and the MQTT password never."""
    from hazardhub.version import version

    log, api, influx = tmp_path / "hub.log", free_port(), free_port()
    argv = _hub_argv(tmp_path, mosquitto.port, api)
    argv += ["--influx", f"http://admin:s3cret-url@127.0.0.1:{influx}/"]
    argv += ["--influx-token", "s3cret-token", "--broker-user", "hazardhub-hub"]
    env = {**os.environ, "HAZARDHUB_MQTT_PASSWORD": "s3cret-mqtt", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        hub = subprocess.Popen(
            [sys.executable, "-m", "hazardhub", *argv],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 20
        while "hub subscribed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=10) == 0, log.read_text()[-3000:]
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
    text = log.read_text()
    assert "s3cret" not in text, text
    said = {}
    for line in text.splitlines():
        _, _, message = line.partition("hazardhub.hub: ")
        if message.startswith(f"hazardhub {version()} hub starting: "):
            said["start"] = message
        elif message.startswith("broker "):
            said["broker"] = message
    data = tmp_path / "hub"
    assert said["start"] == (
        f"hazardhub {version()} hub starting: data folder {data}, store InfluxDB "
        f"http://127.0.0.1:{influx}/ (database hazardhub; spool {data / 'spool'})"
    ), text
    assert said["broker"] == (
        f"broker 127.0.0.1:{mosquitto.port} as hazardhub-hub without TLS (client id "
        f"hazardhub-hub); API http://127.0.0.1:{api}"
    ), text
    # helper-198: the password in the URL was said, the token of --influx-token not (both are
    # in the process list); each warning says where the secret goes instead
    warned = [line.partition("WARNING hazardhub: ")[2] for line in text.splitlines()]
    assert any(
        w.startswith("the InfluxDB password is in the --influx URL: every local user can read it")
        and "$HAZARDHUB_INFLUX_PASSWORD" in w
        for w in warned
    ), text
    assert (
        "the InfluxDB token is given with --influx-token: every local user can read it in the "
        "process list; give it in $HAZARDHUB_INFLUX_TOKEN instead"
    ) in warned, text
