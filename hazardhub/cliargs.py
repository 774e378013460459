"""The `hazardhub` command's arguments: the parser of each subcommand (demo, hub, gateway,
simulate, jt808, mqtt-credentials, check) and the checks of their values (the `--influx` URL's:
`hazardhub.influxurl`). A concern of its own, split from `hazardhub.cli`, which runs what is
parsed here; the code moved as it was.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from hazardhub.influxurl import influx_password_in_url, influx_url_problem, influx_with_login
from hazardhub.version import version
from telemetry.brokertls import BrokerTls

__all__ = [
    "add_broker_tls",
    "address",
    "broker_tls",
    "hostport",
    "influx_password_in_url",
    "influx_url_problem",
    "influx_with_login",
    "parser",
    "secrets_in_argv",
]

# `hazardhub --help`'s description: hazardhub.cli's docstring, as before the split
_DESCRIPTION = "The `hazardhub` command: demo, hub, gateway, check."


def hostport(text: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, HOST, [IPv6]:PORT or an IPv6 address alone, as a host and a port; ValueError
    saying what is wrong (a port that is not a number from 0 to 65535)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not [IPv6]:PORT: {text!r}")
        port = rest[1:] or str(default_port)
    elif text.count(":") > 1:  # an IPv6 address alone
        host, port = text, str(default_port)
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, str(default_port)
    if not port.isdigit() or int(port) > 65535:  # 0: any free port (a listener's)
        raise ValueError(f"the port must be a number from 0 to 65535: {text!r}")
    if not host:
        raise ValueError(f"no host: {text!r}")
    return host, int(port)


def address(default_port: int, *, listen: bool = False) -> Callable[[str], str]:
    """An argument type checking HOST:PORT (`hostport`); the text is kept as given. Port 0 (any
    free port) only for what listens: a connection to port 0 fails."""

    def check(text: str) -> str:
        try:
            port = hostport(text, default_port)[1]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if port == 0 and not listen:
            raise argparse.ArgumentTypeError(f"port 0 is no port to connect to: {text!r}")
        return text

    return check


def _amount(what: str, unit: str, *, zero: bool) -> Callable[[str], float]:
    """An argument type for an amount (`what`, in `unit`): finite, positive (or zero, with
    `zero`); fractions allowed."""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {unit}: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            kind = "zero or positive" if zero else "positive"
            raise argparse.ArgumentTypeError(f"{what} must be {kind} and finite: {text!r}")
        return value

    return check


def _seconds(zero: bool) -> Callable[[str], float]:
    """A duration in seconds."""
    return _amount("a duration", "seconds", zero=zero)


def add_broker_tls(p: argparse.ArgumentParser) -> None:
    """The options of TLS to the MQTT broker, the same on every command that connects to it
    (`telemetry.brokertls`; docs/operations.md)."""
    g = p.add_argument_group("TLS to the MQTT broker (its port is usually 8883)")
    g.add_argument(
        "--broker-tls",
        action="store_true",
        help="connect with TLS, trusting the system's CAs (the broker's name is checked)",
    )
    g.add_argument(
        "--broker-ca",
        type=Path,
        default=None,
        metavar="FILE",
        help="trust this CA bundle (PEM) for the broker's certificate; implies --broker-tls",
    )
    g.add_argument(
        "--broker-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="client certificate (PEM) for a broker that requires one; with --broker-key",
    )
    g.add_argument(
        "--broker-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="the client certificate's private key (PEM, not encrypted)",
    )


def broker_tls(args: argparse.Namespace) -> BrokerTls | None:
    """The TLS settings `add_broker_tls`'s options give (None: plain MQTT), their files read:
    BrokerTlsError saying which cannot be used."""
    ca, cert, key = args.broker_ca, args.broker_cert, args.broker_key
    if not (args.broker_tls or ca or cert or key):
        return None
    return BrokerTls.load(ca, cert, key)


def secrets_in_argv(args: argparse.Namespace) -> list[str]:
    """The start-up warnings of `hazardhub hub` for secrets given on its command line, which
    every local user reads in the process list (`ps`): an InfluxDB password in the `--influx`
    URL, a token in `--influx-token` (helper-198: only the password was said). Each says where
    the secret goes instead; none says the secret."""
    said = []
    if args.influx is not None and influx_password_in_url(args.influx):
        said.append(
            "the InfluxDB password is in the --influx URL: every local user can read it in the "
            "process list; give the user with --influx-user and the password in "
            "$HAZARDHUB_INFLUX_PASSWORD"
        )
    if args.influx_token is not None:
        said.append(
            "the InfluxDB token is given with --influx-token: every local user can read it in "
            "the process list; give it in $HAZARDHUB_INFLUX_TOKEN instead"
        )
    return said


_mib = _amount("a spool limit", "MiB", zero=False)  # a spool's size in MiB


def parser() -> argparse.ArgumentParser:
    """The parser of the `hazardhub` command line and its subcommands."""
    p = argparse.ArgumentParser(prog="hazardhub", description=_DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"hazardhub {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the whole hub with simulators on embedded defaults")
    d.add_argument(
        "--config",
        type=Path,
        default=Path("examples/demo.yaml"),
        help="the hub configuration (default: %(default)s)",
    )
    d.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".hazardhub-demo"),
        help="the demo's databases and spools, emptied at start without --keep-data "
        "(default: %(default)s)",
    )
    d.add_argument(
        "--api",
        type=address(8000, listen=True),
        default="127.0.0.1:8000",
        help="HOST:PORT of the HTTP API",
    )
    d.add_argument("--broker-port", type=int, default=0, help="embedded broker port (1883 if free)")
    d.add_argument("--keep-data", action="store_true", help="keep data of the previous run")

    h = sub.add_parser("hub", help="run the hub: ingest, alert core, stores, API")
    h.add_argument(
        "-c",
        "--config",
        type=Path,
        required=True,
        help="the hub configuration (docs/configuration.md)",
    )
    h.add_argument(
        "--broker",
        type=address(1883),
        default="127.0.0.1:1883",
        help="HOST:PORT of the MQTT broker (default: %(default)s)",
    )
    h.add_argument("--influx", default=None, help="InfluxDB URL (default: embedded SQLite store)")
    h.add_argument(
        "--influx-db", default="hazardhub", help="InfluxDB 1.x database (default: %(default)s)"
    )
    h.add_argument(
        "--influx-user",
        default=None,
        help="InfluxDB 1.x user; the password is read from $HAZARDHUB_INFLUX_PASSWORD",
    )
    # store options (docs/storage.md)
    h.add_argument(
        "--influx-token",
        default=None,
        help="API token (InfluxDB 2.x/3.x); give it in $HAZARDHUB_INFLUX_TOKEN instead: on the "
        "command line every local user reads it in the process list (ps)",
    )
    h.add_argument("--influx-org", default=None, help="organisation for /api/v2/write")
    h.add_argument("--influx-bucket", default=None, help="write with /api/v2/write to this bucket")
    h.add_argument(
        "--influx-retention",
        default="184d",
        help="retention policy duration made default on the v1 database ('none': leave it; "
        "default: %(default)s)",
    )
    h.add_argument(
        "--influx-alarm-retention",
        default="1096d",
        help="duration of the v1 retention policy hazardhub_3y that keeps the alarm events "
        "(violations and their handling: 3 years; default: %(default)s)",
    )
    h.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="where readings wait while the store is away (default: DATA_DIR/spool)",
    )
    h.add_argument(
        "--spool-max-mb",
        type=_mib,
        default=1024.0,
        help="the store's disk spool limit, MiB (default: %(default)s)",
    )
    h.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="the hub's databases (alarms, registry, analytics state; the embedded store), "
        "relative to the working folder (default: %(default)s)",
    )
    h.add_argument(
        "--api",
        type=address(8000, listen=True),
        default="127.0.0.1:8000",
        help="HOST:PORT of the HTTP API (default: %(default)s)",
    )
    h.add_argument(
        "--client-id",
        default="hazardhub-hub",
        help="MQTT client id: its session keeps what the broker holds for the hub while it is "
        "away (default: %(default)s)",
    )
    h.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user; the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )

    add_broker_tls(h)

    from hazardhub.gatewaymetrics import add_metrics  # (it reads this module's types)

    g = sub.add_parser("gateway", help="poll the Modbus devices of one gateway, publish over MQTT")
    g.add_argument(
        "-c", "--config", type=Path, required=True, help="the hub configuration (its devices)"
    )
    g.add_argument("--tenant", required=True, help="the enterprise whose devices it polls")
    g.add_argument(
        "--gateway",
        default="gw1",
        help="the gateway's id: the devices whose `gateway:` names it (default: %(default)s)",
    )
    g.add_argument(
        "--broker",
        type=address(1883),
        default="127.0.0.1:1883",
        help="HOST:PORT of the MQTT broker (default: %(default)s)",
    )
    g.add_argument(
        "--spool-dir",
        type=Path,
        default=Path("spool"),
        help="where batches wait while the broker is away (default: %(default)s)",
    )
    g.add_argument(
        "--spool-max-mb",
        type=_mib,
        default=256.0,
        help="spool limit, MiB: the oldest batches go first, counted (default: %(default)s)",
    )
    g.add_argument(
        "--spool-max-age-h",
        type=_amount("a spool's age", "hours", zero=False),
        default=168.0,
        help="batches older than this leave the spool, counted (default: %(default)s)",
    )
    g.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user; the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )

    add_broker_tls(g)
    add_metrics(g, 9101)

    from hazardhub.simulate import add_parser as add_simulate_parser

    add_simulate_parser(sub)

    from hazardhub.jt808args import add_jt808_parser

    add_jt808_parser(sub)
    from hazardhub.jt809cmd import add_jt809_parser

    add_jt809_parser(sub)

    from hazardhub.minefilescmd import add_minefiles_parser

    add_minefiles_parser(sub)

    m = sub.add_parser("mqtt-credentials", help="Mosquitto users and ACL for the configuration")
    m.add_argument("-c", "--config", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True, help="folder for passwd, acl, credentials")
    m.add_argument(
        "--rotate",
        action="store_true",
        help="new passwords for every user (by default the users of --out keep theirs)",
    )
    m.add_argument(
        "--data-dir",
        type=Path,
        help="the hub's data folder: use the configuration it runs (with the changes made "
        "through the API) instead of the file alone",
    )
    for flag, said in (
        ("--alarm-reader", "a user reading every tenant's alarm topics only; later runs keep it"),
        ("--drop-alarm-reader", "remove an alarm reader an earlier run made"),
    ):
        m.add_argument(flag, action="append", default=[], metavar="NAME", help=said)

    b = sub.add_parser(
        "backup",
        help="copy the hub's data folder (or a gateway's spool folder) while it runs",
        description="Copy a folder of the hub's (its --data-dir) or of a gateway's (its "
        "--spool-dir: the JT/T 808 terminals' bindings) into a new folder while they run: each "
        "SQLite database with SQLite's online backup API (a consistent snapshot), the other "
        "files as they are, every copy mode 0600. Restore: stop the process, copy the files "
        "back (docs/operations.md).",
    )
    b.add_argument(
        "--data-dir",
        "--spool-dir",
        dest="source",
        metavar="DIR",
        type=Path,
        required=True,
        help="the folder to copy",
    )
    b.add_argument(
        "--to",
        metavar="FOLDER",
        type=Path,
        required=True,
        help="a new (or empty) folder for the copy",
    )

    r = sub.add_parser(
        "restored",
        help="after putting back a data folder copied otherwise than by hazardhub backup",
        description="Mark the hub's data folder as restored from a copy (needed only when the "
        "files were not copied by hazardhub backup, which marks its copies): the hub's next "
        "start gives new notifications keys of a new series, never those sent after the copy "
        "was made (docs/operations.md, Restore).",
    )
    r.add_argument("--data-dir", type=Path, required=True, help="the hub's data folder")

    c = sub.add_parser("check", help="validate a configuration and its profiles")
    c.add_argument("-c", "--config", type=Path, required=True)
    for command in ("demo", "hub", "gateway", "jt808"):
        _say_defaults(sub.choices[command])
    return p


def _say_defaults(p: argparse.ArgumentParser) -> None:
    """Each option of `p` with a default its help does not say yet says it."""
    for action in p._actions:
        if action.default in (None, False, argparse.SUPPRESS) or not action.help:
            continue
        if "default" not in action.help:
            action.help += " (default: %(default)s)"
