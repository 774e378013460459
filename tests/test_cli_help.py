"""`hazardhub <command> --help` says what each option of the long-running commands is for and its
default (helper-178 had to find `--data-dir`'s `data`, relative to the working folder, in
docs/operations.md)."""

from __future__ import annotations

import argparse

import pytest

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
