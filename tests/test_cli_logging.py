"""What the command line logs: httpx's INFO lines carry each request's URL, a `user:password@`
of an InfluxDB URL included, so they stay out of the hub's log (helper-73)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hazardhub.cli import main
from hazardhub.cliargs import parser

ROOT = Path(__file__).resolve().parent.parent


def test_request_urls_stay_out_of_the_log() -> None:
    assert main(["check", "-c", str(ROOT / "examples" / "demo.yaml")]) == 0
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).level >= logging.WARNING, name  # whatever the root says


@pytest.mark.parametrize("given", ["0.05", "1024"])
def test_a_spool_limit_takes_fractions_of_a_mib(given: str) -> None:
    args = parser().parse_args(["hub", "-c", "x.yaml", "--spool-max-mb", given])
    assert args.spool_max_mb == float(given)


@pytest.mark.parametrize("given", ["nan", "inf", "-5", "0", "lots"])
def test_a_spool_limit_that_is_no_size_is_refused_at_once(given: str, capsys) -> None:
    """`nan` crashed at int(), a negative one was taken (helper-97)."""
    for command in (["hub", "-c", "x.yaml"], ["gateway", "-c", "x.yaml", "--tenant", "t"]):
        with pytest.raises(SystemExit):
            parser().parse_args([*command, "--spool-max-mb", given])
        assert "spool" in capsys.readouterr().err or given == "lots"
