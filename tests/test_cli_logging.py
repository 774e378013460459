"""What the command line logs: httpx's INFO lines carry each request's URL, a `user:password@`
of an InfluxDB URL included, so they stay out of the hub's log (helper-73)."""

from __future__ import annotations

import logging
from pathlib import Path

from hazardhub.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_request_urls_stay_out_of_the_log() -> None:
    assert main(["check", "-c", str(ROOT / "examples" / "demo.yaml")]) == 0
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).level >= logging.WARNING, name  # whatever the root says
