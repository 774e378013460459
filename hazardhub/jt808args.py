"""The `hazardhub jt808` subcommand's arguments: the JT/T 808 gateway (docs/jt808.md) and its
`bindings` / `unbind` administration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hazardhub.cliargs import _mib, _seconds, add_broker_tls, address
from hazardhub.gatewaymetrics import add_metrics
from telemetry.errors import ConfigError

if TYPE_CHECKING:
    from gateway.jt808.packets import PacketPolicy

__all__ = ["add_jt808_parser", "packet_policy"]


def add_jt808_parser(sub: Any) -> None:
    """Add `jt808` to the subcommands `sub` (`ArgumentParser.add_subparsers`)."""
    j = sub.add_parser("jt808", help="accept JT/T 808 terminals over TCP, publish their positions")
    j.add_argument("-c", "--config", type=Path, help="the hub configuration (required to serve)")
    j.add_argument(
        "--listen",
        type=address(6808, listen=True),
        default="0.0.0.0:6808",
        help="HOST:PORT for the terminals (default: %(default)s)",
    )
    j.add_argument(
        "--broker",
        type=address(1883),
        default="127.0.0.1:1883",
        help="HOST:PORT of the MQTT broker",
    )
    j.add_argument(
        "--spool-dir",
        type=Path,
        default=Path("spool"),
        help="where positions wait while the broker is away; the terminals' bindings "
        "(default: %(default)s)",
    )
    j.add_argument(
        "--spool-max-mb",
        type=_mib,
        default=256.0,
        help="spool limit, MiB: the oldest go first, counted (default: %(default)s)",
    )
    j.add_argument(
        "--idle-timeout-s", type=_seconds(zero=False), default=300.0, help="close silent terminals"
    )
    j.add_argument(
        "--auth-timeout-s",
        type=_seconds(zero=False),
        default=15.0,
        help="close a connection not authenticated this long after it opened",
    )
    j.add_argument(
        "--hold-live-s",
        type=_seconds(zero=True),
        default=15.0,
        help="after a terminal authenticates (or a silence while driving), hold its positions "
        "at most this long so that a blind-area upload sent after the live fix goes first "
        "(0: hold nothing; docs/jt808.md)",
    )
    j.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="connections open at most (default: the open-file limit less 128)",
    )
    j.add_argument(
        "--max-connections-per-host",
        type=int,
        default=256,
        help="connections open at most from one source address (carrier NAT: keep it high)",
    )
    j.add_argument(
        "--hold-confirmations-s",
        type=_seconds(zero=True),
        default=86400.0,
        help="keep an alarm confirmation for a terminal away this long (default a day)",
    )
    j.add_argument(
        "--packet-ask-s",
        type=_seconds(zero=True),
        default=15.0,
        help="ask a terminal for the sub-packages of a long message it has not sent after this "
        "long without one (0x8003), up to 3 times (0: never ask; docs/jt808.md)",
    )
    j.add_argument(
        "--packet-drop-s",
        type=_seconds(zero=False),
        default=60.0,
        help="drop a sub-packaged message incomplete after this long without a sub-package "
        "(counted incomplete_packets)",
    )
    j.add_argument(
        "--name",
        default="jt808",
        help="gateway name (spool file, status, drop reports): one of the config's jt808_gateways",
    )
    j.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user (e.g. hazardhub-jt808); the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )
    j.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the hub's data folder (same host): serve the configuration the hub runs, with the "
        "vehicles and tenants added through its API",
    )
    j.add_argument(
        "--auth-secret-env",
        default="HAZARDHUB_JT808_SECRET",
        help="no longer used: auth codes are random and kept in the spool folder",
    )
    add_broker_tls(j)
    add_metrics(j, 9108)

    ja = j.add_subparsers(dest="jt808_action", metavar="{bindings,unbind}")
    jb = ja.add_parser("bindings", help="list which terminal each vehicle is bound to")
    ju = ja.add_parser(
        "unbind", help="free a vehicle from its terminal: the next terminal to register it binds it"
    )
    ju.add_argument("--vehicle", required=True, help="TENANT/VEHICLE")
    for admin in (jb, ju):
        admin.add_argument(
            "--spool-dir", type=Path, default=Path("spool"), help="the gateway's spool folder"
        )


def packet_policy(args: argparse.Namespace) -> PacketPolicy:
    """The sub-package policy of `--packet-ask-s` and `--packet-drop-s`."""
    from gateway.jt808.packets import PacketPolicy  # (the gateway's, when it runs)

    if args.packet_ask_s and args.packet_ask_s >= args.packet_drop_s:
        raise ConfigError(
            f"--packet-ask-s {args.packet_ask_s:g} must be under --packet-drop-s "
            f"{args.packet_drop_s:g}: a message dropped before it is asked for is never asked for"
        )
    ask_ms, default = round(args.packet_ask_s * 1000), PacketPolicy()
    return PacketPolicy(
        ask_after_ms=ask_ms or default.ask_after_ms,
        max_asks=default.max_asks if ask_ms else 0,
        max_age_ms=round(args.packet_drop_s * 1000),
    )
