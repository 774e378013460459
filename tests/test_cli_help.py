"""`hazardhub <command> --help` says what each option of the long-running commands is for and its
default (helper-178 had to find `--data-dir`'s `data`, relative to the working folder, in
docs/operations.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hazardhub.cli import main
from hazardhub.cliargs import parser


def _sub(name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("command", ["demo", "hub", "gateway", "jt808"])
def test_every_option_says_what_it_is_for_and_a_set_default(command: str) -> None:
    sub = _sub(command)
    for action in sub._actions:
        if isinstance(action, argparse._SubParsersAction) or "-h" in action.option_strings:
            continue
        assert action.help, (command, action.option_strings)
        if action.default not in (None, False, argparse.SUPPRESS) and "(default" not in str(
            action.help
        ):
            assert "default" in str(action.help), (command, action.option_strings)


def test_the_hubs_folders_say_their_defaults() -> None:
    text = " ".join(_sub("hub").format_help().split())
    assert "relative to the working folder (default: data)" in text
    assert "(default: DATA_DIR/spool)" in text and "(default: 127.0.0.1:8000)" in text


def test_the_hubs_secrets_say_their_environment_variables() -> None:
    """helper-198: `--influx-token`'s help did not name $HAZARDHUB_INFLUX_TOKEN, where the token
    stays out of the process list (the password's and the MQTT user's name theirs)."""
    helps = {o: str(a.help) for a in _sub("hub")._actions for o in a.option_strings}
    for option, variable in (
        ("--influx-token", "$HAZARDHUB_INFLUX_TOKEN"),
        ("--influx-user", "$HAZARDHUB_INFLUX_PASSWORD"),
        ("--broker-user", "$HAZARDHUB_MQTT_PASSWORD"),
    ):
        assert variable in helps[option], (option, helps[option])


def test_check_says_a_critical_t_the_table_overrides_and_counts_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hazardhub check` says what the hub warns of at start (a file's critical_t that differs
    from GB 18218's table, which is used) and "1 tenant", not "1 tenants" (helper-180)."""
    path = tmp_path / "plant.yaml"
    path.write_text(
        "tenants:\n"
        "  - id: hx-chem\n"
        "    sites:\n"
        "      - id: tank-farm\n"
        "        kind: chemical\n"
        "        inventory:\n"
        "          - {substance: 氯, quantity_t: 2, critical_t: 10}\n",
        encoding="utf-8",
    )
    assert main(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert ": ok: 1 tenant, 0 devices, 0 sensors," in out, out
    assert "warning:" in err and "critical_t" in err and "10" in err and "5" in err, err


def test_jt808_sub_package_flags_make_the_gateways_policy() -> None:
    """`hazardhub jt808 --packet-ask-s/--packet-drop-s` (the policy was set in code only)."""
    from hazardhub.jt808args import packet_policy
    from telemetry.errors import ConfigError

    def policy(*flags: str):  # type: ignore[no-untyped-def]
        return packet_policy(parser().parse_args(["jt808", *flags]))

    default = policy()
    assert (default.ask_after_ms, default.max_asks, default.max_age_ms) == (15_000, 3, 60_000)
    quick = policy("--packet-ask-s", "2.5", "--packet-drop-s", "30")
    assert (quick.ask_after_ms, quick.max_asks, quick.max_age_ms) == (2_500, 3, 30_000)
    assert policy("--packet-ask-s", "0").max_asks == 0  # never asked, dropped at 60 s
    with pytest.raises(ConfigError, match="must be under --packet-drop-s"):
        policy("--packet-ask-s", "60")
