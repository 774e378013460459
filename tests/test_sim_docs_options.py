"""Every option of `hazardhub simulate ...` is in docs/simulators.md: `--seed` was in `--help`
only, and a reader of the docs could not know a rehearsal's noise can be drawn again."""

from __future__ import annotations

import argparse
from pathlib import Path

from hazardhub.cliargs import parser

ROOT = Path(__file__).resolve().parent.parent


def _choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_simulate_option_is_documented() -> None:
    doc = (ROOT / "docs" / "simulators.md").read_text(encoding="utf-8")
    missing = [
        (name, option)
        for name, sub in _choices(_choices(parser())["simulate"]).items()
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--")
        and option not in ("--help", "--config")
        and f"`{option}" not in doc
        and f" {option} " not in doc
    ]
    assert not missing, missing
