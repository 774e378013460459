"""The systemd units of docs/operations.md and docs/jt808.md, read from the docs and parsed as
systemd and hazardhub would take them (helper-233's deploy review: the JT/T 808 unit had no
`--data-dir`, so the vehicles added through the API were refused by the gateway; it put the
MQTT password in an `Environment=` line, which `systemctl show` prints to every local user, and
had `After=network-online.target` without the `Wants=` that makes it wait; the hub's unit had a
fixed MQTT client id, copied by every centre that followed it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hazardhub.cliargs import parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _units() -> dict[str, str]:
    """Each `ini` block of the docs that is a unit, by the file its first line names."""
    found = {}
    for doc in ("operations.md", "jt808.md"):
        text = (DOCS / doc).read_text(encoding="utf-8")
        for block in re.findall(r"```ini\n(.*?)\n```", text, re.S):
            head = block.splitlines()[0]
            if head.startswith("# /etc/systemd/system/"):
                found[head[2:].rsplit("/", 1)[1]] = block
    return found


def _settings(unit: str) -> dict[str, list[str]]:
    joined = unit.replace("\\\n", " ")
    settings: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


UNITS = _units()


def test_the_docs_have_the_three_units() -> None:
    assert set(UNITS) == {
        "hazardhub.service",
        "hazardhub-gateway.service",
        "hazardhub-jt808.service",
    }, sorted(UNITS)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_a_unit_keeps_its_secrets_in_a_file_and_waits_for_the_network(name: str) -> None:
    settings = _settings(UNITS[name])
    assert "Environment" not in settings, (name, settings["Environment"])
    (env_file,) = settings["EnvironmentFile"]
    assert env_file.startswith("/etc/hazardhub/") and env_file.endswith(".env"), env_file
    if "network-online.target" in " ".join(settings["After"]):
        assert "network-online.target" in " ".join(settings.get("Wants", [])), name
    assert settings["User"] == ["hazardhub"] and settings["Group"] == ["hazardhub"], name


@pytest.mark.parametrize("name", sorted(UNITS))
def test_a_units_command_is_one_hazardhub_takes(name: str) -> None:
    (command,) = _settings(UNITS[name])["ExecStart"]
    argv = shlex.split(command.replace("${HAZARDHUB_CLIENT_ID}", "hazardhub-hub-0123456789abcdef"))
    assert argv[0] == "/opt/hazardhub/.venv/bin/hazardhub", argv
    args = parser().parse_args(argv[1:])
    assert args.broker_user, (name, "no --broker-user: the documented broker refuses it")
    if args.command in ("hub", "jt808"):
        assert str(args.data_dir) == "/var/lib/hazardhub", (name, args.data_dir)
    if args.command == "hub":
        assert "--client-id ${HAZARDHUB_CLIENT_ID}" in command, command


def test_the_hubs_environment_file_gets_its_client_id_and_password() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    installing = text[text.index("## Installing") : text.index("## The broker")]
    assert "HAZARDHUB_CLIENT_ID=hazardhub-hub-%s" in installing
    assert "credentials.txt" in installing and "> /etc/hazardhub/hub.env" in installing
    # the hub is started after the broker's users exist (its password is in credentials.txt)
    assert installing.index("mqtt-credentials") < installing.index("enable --now hazardhub")
    assert not re.search(r"hazardhub-hub-[0-9a-f]{16} \\", text), "a fixed client id to copy"
