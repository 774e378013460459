"""What `hazardhub hub` (and a gateway) refuse at start, in one line and exit status 2, before
anything runs (helper-149's findings 10 and 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services import free_port

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """version: 1
tenants:
  - id: north-coal
"""


def _refused(argv: list[str]) -> str:
    """The one line a start of `hazardhub` refused with (exit status 2) says."""
    done = subprocess.run(
        [sys.executable, "-m", "hazardhub", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,  # a start not refused runs on
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    return line


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
    ],
)
def test_an_influx_url_without_http_is_refused_at_start(
    url: str, said: str, tmp_path: Path
) -> None:
    """helper-149: `--influx 127.0.0.1:57197` was taken for an InfluxDB away: the hub said
    ready and spooled for ever."""
    data = tmp_path / "data"
    line = _refused(_hub(tmp_path, "--data-dir", str(data), "--influx", url))
    assert line.startswith("hazardhub hub: --influx ") and said in line, line
    assert "s3cret" not in line
    assert not data.exists()  # nothing started
