"""The hub's log lines: their time with the host's zone, and, under systemd, each line's syslog
priority in front so that `journalctl -p warning` finds the hub's warnings (a sysadmin found
every hub line filed at `info`, and times with no zone, helper-192)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hazardhub.logsetup import FORMAT, HubFormatter, JournalFormatter, priority, under_journal

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(<\d>)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4} (\w+) +([\w.]+): (.*)$")


def _record(level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("ingest.flush", level, __file__, 1, msg, None, info)


@pytest.mark.parametrize(
    ("level", "want"),
    [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (50, 2)],
)
def test_each_level_has_its_syslog_priority(level: int, want: int) -> None:
    assert priority(level) == want
    line = JournalFormatter(FORMAT).format(_record(level, "x"))
    assert line.startswith(f"<{want}>"), line


def test_a_tracebacks_every_line_has_the_priority_and_the_time_its_zone() -> None:
    text = JournalFormatter(FORMAT).format(_record(logging.ERROR, "failed", exc=True))
    lines = text.split("\n")
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines), text
    m = LINE.match(lines[0])
    assert m and m.group(2) == "ERROR" and m.group(3) == "ingest.flush", lines[0]
    plain = HubFormatter(FORMAT).format(_record(logging.WARNING, "late"))
    assert LINE.match(plain) and not plain.startswith("<"), plain


def test_only_the_journals_own_stream_is_taken_for_it(tmp_path: Path, monkeypatch) -> None:
    ours, other = tmp_path / "journal", tmp_path / "elsewhere"
    with ours.open("w") as j, other.open("w") as o:
        st = os.fstat(j.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journal(j)
        assert not under_journal(o)  # stderr redirected by a wrapper: plain lines
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not under_journal(j)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not under_journal(j)


def _run_logging(tmp_path: Path, journal: bool) -> list[str]:
    """A real `hazardhub` process whose standard error is a file (systemd's journal stream when
    `journal`), made to log a warning: its first start check (an API port taken)."""
    err = tmp_path / ("journal.txt" if journal else "plain.txt")
    code = (
        "import logging, sys\n"
        "from hazardhub import logsetup\n"
        "logsetup.configure(False)\n"
        "logging.getLogger('hazardhub').warning('a warning')\n"
        "logging.getLogger('hazardhub').info('an info')\n"
        "logging.getLogger('hazardhub').debug('not shown')\n"
    )
    with err.open("w") as out:
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        if journal:
            st = os.fstat(out.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run([sys.executable, "-c", code], stderr=out, cwd=ROOT, env=env, check=True)
    return err.read_text().splitlines()


def test_a_process_under_the_journal_says_each_lines_priority(tmp_path: Path) -> None:
    lines = _run_logging(tmp_path, journal=True)
    assert [(m.group(1), m.group(2), m.group(4)) for m in map(LINE.match, lines) if m] == [
        ("<4>", "WARNING", "a warning"),
        ("<6>", "INFO", "an info"),
    ], lines
    plain = _run_logging(tmp_path, journal=False)
    assert [(m.group(1), m.group(2)) for m in map(LINE.match, plain) if m] == [
        (None, "WARNING"),
        (None, "INFO"),
    ], plain
