"""The vsftpd configuration of docs/minefiles.md starts vsftpd as written (helper-233's deploy
review: its comments were at the ends of lines, which vsftpd does not take: a comment after
`allow_writeable_chroot=YES` stopped it at start, and `local_root=` took one into the folder)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from services import free_port

ROOT = Path(__file__).resolve().parent.parent


def _block() -> str:
    text = (ROOT / "docs" / "minefiles.md").read_text(encoding="utf-8")
    found = re.search(r"```ini\n(# /etc/vsftpd\.conf.*?)\n```", text, re.S)
    assert found is not None, "the vsftpd.conf block of docs/minefiles.md"
    return found.group(1) + "\n"


def test_every_line_is_a_comment_or_a_setting_alone() -> None:
    for line in _block().splitlines():
        if not line.startswith("#"):
            assert re.fullmatch(r"[a-z_]+=\S+", line), line


def test_vsftpd_starts_with_it(tmp_path: Path) -> None:
    if shutil.which("vsftpd") is None:  # (never skipped: `make test` installs it)
        pytest.fail("vsftpd is not installed: run make test", False)
    (tmp_path / "empty").mkdir()
    config = tmp_path / "vsftpd.conf"
    config.write_text(
        _block() + f"listen=YES\nlisten_ipv6=NO\nlisten_port={free_port()}\nbackground=NO\n"
        f"secure_chroot_dir={tmp_path / 'empty'}\nxferlog_enable=NO\n"
    )
    vsftpd = shutil.which("vsftpd")
    assert vsftpd is not None
    process = subprocess.Popen(
        [vsftpd, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        time.sleep(1.0)  # a configuration it refuses stops it at once, saying the line
        assert process.poll() is None, process.communicate()[0]
    finally:
        process.terminate()
        process.wait(5)
