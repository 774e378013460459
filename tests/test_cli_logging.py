"""What the command line logs: httpx's INFO lines carry each request's URL, a `user:password@`
of an InfluxDB URL included, so they stay out of the hub's log (helper-73)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hazardhub.cli import main
from hazardhub.cliargs import hostport, parser

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


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("127.0.0.1:8001", ("127.0.0.1", 8001)),
        ("localhost", ("localhost", 8000)),
        ("[::1]:8001", ("::1", 8001)),
        ("[::1]", ("::1", 8000)),
        ("::1", ("::1", 8000)),
    ],
)
def test_an_address_is_a_host_and_a_port_ipv6_too(given: str, want: tuple[str, int]) -> None:
    """`[::1]:8001` kept its brackets and `::1` was host ':' port 1 (helper-143)."""
    args = parser().parse_args(["hub", "-c", "x.yaml", "--api", given])
    assert hostport(args.api, 8000) == want


@pytest.mark.parametrize("given", ["127.0.0.1:x", "127.0.0.1:-1", "h:70000", "[::1:80", ":80"])
def test_an_address_with_no_port_or_host_is_refused_at_once(given: str, capsys) -> None:
    """A port that is not a number ended in a ValueError's traceback."""
    with pytest.raises(SystemExit):
        parser().parse_args(["hub", "-c", "x.yaml", "--api", given])
    assert "--api" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "given"),
    [
        ("--idle-timeout-s", "nan"),
        ("--idle-timeout-s", "0"),
        ("--auth-timeout-s", "-1"),
        ("--hold-live-s", "inf"),
        ("--hold-confirmations-s", "-5"),
    ],
)
def test_a_duration_that_is_none_is_refused_at_once(option: str, given: str, capsys) -> None:
    """nan and negative durations were taken (helper-143); 0 holds nothing where it may."""
    with pytest.raises(SystemExit):
        parser().parse_args(["jt808", "-c", "x.yaml", option, given])
    assert option in capsys.readouterr().err
    assert parser().parse_args(["jt808", "-c", "x.yaml", "--hold-live-s", "0"]).hold_live_s == 0


@pytest.mark.parametrize(
    ("given", "want"),
    [("::1", ("::1", 1883)), ("[::1]:1884", ("::1", 1884)), ("10.0.0.2", ("10.0.0.2", 1883))],
)
def test_the_simulators_broker_is_read_as_the_hubs(given: str, want: tuple[str, int]) -> None:
    """`hazardhub simulate` had its own reading: ::1 was host '::' port 1 (helper-147)."""
    from hazardhub.simulate import _hostport

    args = parser().parse_args(["simulate", "fleet", "-c", "x.yaml", "--broker", given])
    assert _hostport(args.broker) == want


@pytest.mark.parametrize("command", [["hub", "-c", "x.yaml"], ["simulate", "load"]])
def test_a_broker_on_port_0_is_refused(command: list[str], capsys) -> None:
    """Port 0 is any free port for what listens (the API, the JT/T 808 gateway), no port to
    connect to."""
    with pytest.raises(SystemExit):
        parser().parse_args([*command, "--broker", "127.0.0.1:0"])
    assert "port 0 is no port to connect to" in capsys.readouterr().err
