"""The `hazardhub jt809` subcommand: the JT/T 809 upper-platform gateway (docs/jt809.md), its
arguments and its running."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hazardhub.cliargs import _mib, _seconds, add_broker_tls, address, broker_tls, hostport
from hazardhub.gatewaymetrics import add_metrics, run_with_metrics
from hazardhub.startchecks import folder_problem
from telemetry.errors import ConfigError

__all__ = ["add_jt809_parser", "run"]


def add_jt809_parser(sub: Any) -> None:
    """Add `jt809` to the subcommands `sub` (`ArgumentParser.add_subparsers`)."""
    j = sub.add_parser(
        "jt809", help="accept enterprise platforms over JT/T 809, publish their vehicles' positions"
    )
    j.add_argument("-c", "--config", type=Path, required=True, help="the hub configuration")
    j.add_argument(
        "--platforms",
        type=Path,
        required=True,
        help="the lower platforms' YAML file (access codes, logins, keys; keep it mode 0600)",
    )
    j.add_argument(
        "--listen",
        type=address(6809, listen=True),
        default="0.0.0.0:6809",
        help="HOST:PORT for the platforms' main links (default: %(default)s)",
    )
    j.add_argument(
        "--broker", type=address(1883), default="127.0.0.1:1883", help="HOST:PORT of the broker"
    )
    j.add_argument(
        "--spool-dir",
        type=Path,
        default=Path("spool"),
        help="where positions wait while the broker is away (default: %(default)s)",
    )
    j.add_argument(
        "--spool-max-mb",
        type=_mib,
        default=256.0,
        help="spool limit, MiB: the oldest go first, counted (default: %(default)s)",
    )
    j.add_argument(
        "--login-timeout-s",
        type=_seconds(zero=False),
        default=10.0,
        help="close a link not logged in this long after it opened (default: %(default)s)",
    )
    j.add_argument(
        "--idle-timeout-s",
        type=_seconds(zero=False),
        default=180.0,
        help="close a logged-in link silent this long (default: %(default)s)",
    )
    j.add_argument(
        "--max-links",
        type=int,
        default=256,
        help="links open at most (each platform has one); more are closed at once, counted "
        "refused_full (default: %(default)s); keep it above the platforms plus --max-pending",
    )
    j.add_argument(
        "--max-pending",
        type=int,
        default=32,
        help="links not logged in at most: one more closes the oldest of the address with the "
        "most, or is refused (default: %(default)s)",
    )
    j.add_argument(
        "--max-pending-per-address",
        type=int,
        default=4,
        help="links not logged in from one source address at most (default: %(default)s)",
    )
    j.add_argument(
        "--name",
        default="jt809",
        help="gateway name (spool file, status, drop reports): one of the config's "
        "jt808_gateways (default: %(default)s)",
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
        help="the hub's data folder (same host): find the vehicles of the configuration the hub "
        "runs, with those added through its API (checked every 10 s)",
    )
    add_broker_tls(j)
    add_metrics(j, 9109)


def run(
    args: argparse.Namespace, run_until: Callable[[Callable[[asyncio.Event], Awaitable[int]]], int]
) -> int:
    """Run the gateway until stopped (`run_until`: the CLI's signal-aware runner)."""
    from gateway.jt809 import Jt809Gateway, Limits, load_platforms
    from hazardhub.settings import beside_hub, load, vehicle_gateway_problem

    try:
        platforms = load_platforms(args.platforms)
        registry, follow = beside_hub(load(args.config), args.data_dir)
    except ConfigError as exc:
        print(f"hazardhub jt809: {exc}", file=sys.stderr)
        return 2
    if (mode := args.platforms.stat().st_mode) & 0o077:
        logging.getLogger("hazardhub").warning(
            "%s holds the platforms' passwords and is mode %04o: group or others may read it; "
            "make it 0600 (chmod 600), the gateway's user's",
            args.platforms,
            mode & 0o7777,
        )
    if args.max_pending < 1 or args.max_pending_per_address < 1:
        print(
            "hazardhub jt809: --max-pending and --max-pending-per-address: at least 1",
            file=sys.stderr,
        )
        return 2
    if (bad := vehicle_gateway_problem(args.name, registry)) is not None:
        print(f"hazardhub jt809: {bad}", file=sys.stderr)
        return 2
    tenants = {t.id for t in registry.config.tenants}
    unknown = sorted({p.tenant for p in platforms.platforms} - tenants)
    if unknown:
        print(f"hazardhub jt809: {args.platforms}: unknown tenant(s) {unknown}", file=sys.stderr)
        return 2
    if (bad := folder_problem("--spool-dir", args.spool_dir)) is not None:
        print(f"hazardhub jt809: {bad}", file=sys.stderr)
        return 2
    gw = Jt809Gateway(
        platforms,
        registry,
        listen=hostport(args.listen, 6809),
        broker=hostport(args.broker, 1883),
        spool_dir=args.spool_dir,
        name=args.name,
        login_timeout_s=args.login_timeout_s,
        idle_timeout_s=args.idle_timeout_s,
        max_links=args.max_links,
        limits=Limits(pending=args.max_pending, pending_per_address=args.max_pending_per_address),
        spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
        username=args.broker_user,
        password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
        tls=broker_tls(args),
        follow=follow,
    )

    async def main(stop: asyncio.Event) -> int:
        await gw.run(stop)
        return 0

    return run_with_metrics(args, "jt809", 9109, args.name, gw.metrics, main, run_until)
