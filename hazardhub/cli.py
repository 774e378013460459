"""The `hazardhub` command: demo, hub, gateway, check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from telemetry.errors import ConfigError

__all__ = ["main"]


def _hostport(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    return host, int(port)


def _mib(text: str) -> float:
    """A spool limit in MiB: a positive, finite number (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a spool limit must be positive and finite: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hazardhub", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the whole hub with simulators on embedded defaults")
    d.add_argument("--config", type=Path, default=Path("examples/demo.yaml"))
    d.add_argument("--data-dir", type=Path, default=Path(".hazardhub-demo"))
    d.add_argument("--api", default="127.0.0.1:8000", help="HOST:PORT of the HTTP API")
    d.add_argument("--broker-port", type=int, default=0, help="embedded broker port (1883 if free)")
    d.add_argument("--keep-data", action="store_true", help="keep data of the previous run")

    h = sub.add_parser("hub", help="run the hub: ingest, alert core, stores, API")
    h.add_argument("-c", "--config", type=Path, required=True)
    h.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the MQTT broker")
    h.add_argument("--influx", default=None, help="InfluxDB URL (default: embedded SQLite store)")
    h.add_argument("--influx-db", default="hazardhub")
    # store options (docs/storage.md)
    h.add_argument("--influx-token", default=None, help="API token (InfluxDB 2.x/3.x)")
    h.add_argument("--influx-org", default=None, help="organisation for /api/v2/write")
    h.add_argument("--influx-bucket", default=None, help="write with /api/v2/write to this bucket")
    h.add_argument(
        "--influx-retention",
        default="184d",
        help="retention policy duration made default on the v1 database ('none': leave it)",
    )
    h.add_argument("--spool-dir", type=Path, default=None, help="default: DATA_DIR/spool")
    h.add_argument("--spool-max-mb", type=_mib, default=1024.0, help="disk spool limit, MiB")
    h.add_argument("--data-dir", type=Path, default=Path("data"))
    h.add_argument("--api", default="127.0.0.1:8000", help="HOST:PORT of the HTTP API")
    h.add_argument("--client-id", default="hazardhub-hub")
    h.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user; the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )

    g = sub.add_parser("gateway", help="poll the Modbus devices of one gateway, publish over MQTT")
    g.add_argument("-c", "--config", type=Path, required=True)
    g.add_argument("--tenant", required=True)
    g.add_argument("--gateway", default="gw1")
    g.add_argument("--broker", default="127.0.0.1:1883")
    g.add_argument(
        "--spool-dir",
        type=Path,
        default=Path("spool"),
        help="where batches wait while the broker is away",
    )
    g.add_argument("--spool-max-mb", type=_mib, default=256.0)
    g.add_argument("--spool-max-age-h", type=float, default=168.0)
    g.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user; the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )

    from hazardhub.simulate import add_parser as add_simulate_parser

    add_simulate_parser(sub)

    # --- jt808 (issue 7: JT/T 808 gateway) ---
    j = sub.add_parser("jt808", help="accept JT/T 808 terminals over TCP, publish their positions")
    j.add_argument("-c", "--config", type=Path, help="the hub configuration (required to serve)")
    j.add_argument("--listen", default="0.0.0.0:6808", help="HOST:PORT for the terminals")
    j.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the MQTT broker")
    j.add_argument("--spool-dir", type=Path, default=Path("spool"))
    j.add_argument("--spool-max-mb", type=_mib, default=256.0)
    j.add_argument("--idle-timeout-s", type=float, default=300.0, help="close silent terminals")
    j.add_argument(
        "--auth-timeout-s",
        type=float,
        default=15.0,
        help="close a connection not authenticated this long after it opened",
    )
    j.add_argument(
        "--hold-live-s",
        type=float,
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
        type=float,
        default=86400.0,
        help="keep an alarm confirmation for a terminal away this long (default a day)",
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
    # --- end jt808 ---

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

    c = sub.add_parser("check", help="validate a configuration and its profiles")
    c.add_argument("-c", "--config", type=Path, required=True)
    return p


def _run(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run `main` until it returns; SIGINT and SIGTERM ask it to stop cleanly."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())


def _taken(host: str, port: int) -> str | None:
    """Why the API cannot listen on host:port (in use, or not an address of this machine), or
    None: said in one line before anything starts, instead of the tracebacks of every part
    already started when the API fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the API address {host}:{port} cannot be used: {exc}"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            return (
                f"the API address {host}:{port} is not free ({exc.strerror}): another hub or "
                "demo may be running; give another with --api HOST:PORT"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs each request's URL at INFO, a `user:password@` in an InfluxDB URL included
    for noisy in ("amqtt", "transitions", "pymodbus", "uvicorn.error", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(
            logging.CRITICAL if noisy == "pymodbus" else logging.WARNING
        )
    from alerts.vehicles import FleetConfigError

    try:
        return _dispatch(args)
    except (ConfigError, FleetConfigError) as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from hazardhub.settings import load

    if args.command == "check":
        from alerts.vehicles import FleetConfigError, compile_fleet

        loaded = load(args.config)
        reg = loaded.registry()
        try:
            fleet = compile_fleet(reg.config.fleet, reg.vehicles.values())  # corridors' vehicles
        except FleetConfigError as exc:  # (says the place in `fleet:`, not the file: add it)
            raise FleetConfigError(f"{args.config}: fleet.{exc}") from exc
        print(
            f"{args.config}: ok: {len(reg.tenants)} tenants, {len(reg.devices)} devices, "
            f"{len(reg.sensors)} sensors, {len(reg.vehicles)} vehicles, "
            f"{len(reg.config.fleet.geofences)} geofences over {len(fleet)} vehicles"
        )
        return 0
    if args.command == "demo":
        from hazardhub.demo import DemoOptions, run_demo

        host, port = _hostport(args.api, 8000)
        opts = DemoOptions(
            config=args.config,
            data_dir=args.data_dir,
            api_host=host,
            api_port=port,
            broker_port=args.broker_port,
            keep_data=args.keep_data,
        )
        load(args.config).registry()  # fail early with a clear message
        if (busy := _taken(host, port)) is not None:
            print(f"hazardhub demo: {busy}", file=sys.stderr)
            return 2
        return _run(lambda stop: run_demo(opts, stop))
    if args.command == "hub":
        from hazardhub.hub import ApiStartError, Hub, HubSettings

        loaded = load(args.config)
        registry = loaded.registry()
        bhost, bport = _hostport(args.broker, 1883)
        ahost, aport = _hostport(args.api, 8000)
        if (busy := _taken(ahost, aport)) is not None:
            print(f"hazardhub hub: {busy}", file=sys.stderr)
            return 2
        hub = Hub(
            registry,
            HubSettings(
                data_dir=args.data_dir,
                broker_host=bhost,
                broker_port=bport,
                influx_url=args.influx,
                influx_database=args.influx_db,
                influx_token=args.influx_token or os.environ.get("HAZARDHUB_INFLUX_TOKEN"),
                influx_org=args.influx_org,
                influx_bucket=args.influx_bucket,
                influx_retention=None
                if args.influx_retention.lower() == "none"
                else args.influx_retention,
                spool_dir=args.spool_dir,
                spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
                api_host=ahost,
                api_port=aport,
                client_id=args.client_id,
                broker_username=args.broker_user,
                broker_password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
            ),
            build=loaded.registry,
            config_source=str(args.config),
        )

        async def run_hub(stop: asyncio.Event) -> int:
            try:
                await hub.run(stop)
            except ExceptionGroup as failed:  # said in the log (Hub.run): the hub ends with it
                # the API address taken since the check above: as the check says it
                taken = all(isinstance(e, ApiStartError) for e in failed.exceptions)
                return 2 if taken else 1
            return 0

        return _run(run_hub)
    if args.command == "gateway":
        from gateway.runner import Gateway
        from telemetry.topics import TopicLayout

        registry = load(args.config).registry()
        bhost, bport = _hostport(args.broker, 1883)
        if not any(
            d.tenant == args.tenant and d.spec.gateway == args.gateway
            for d in registry.devices.values()
        ):
            print(
                f"no devices of tenant {args.tenant!r} use gateway {args.gateway!r}",
                file=sys.stderr,
            )
            return 2
        gw = Gateway(
            registry,
            tenant=args.tenant,
            gateway=args.gateway,
            broker_host=bhost,
            broker_port=bport,
            layout=TopicLayout(),
            spool_dir=args.spool_dir,
            spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
            spool_max_age_s=args.spool_max_age_h * 3600,
            username=args.broker_user,
            password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
        )

        async def run_gw(stop: asyncio.Event) -> int:
            await gw.run(stop)
            return 0

        return _run(run_gw)
    if args.command == "mqtt-credentials":
        from hazardhub.mqttauth import kept_passwords, plan_users, write_files
        from hazardhub.settings import running_registry
        from telemetry.topics import TopicLayout

        loaded = load(args.config)
        registry = running_registry(loaded, args.data_dir) if args.data_dir else loaded.registry()
        users = plan_users(registry, TopicLayout())
        if not args.rotate:
            users = kept_passwords(users, args.out)
        write_files(users, args.out)
        print(f"wrote {args.out}/passwd, acl and credentials.txt for {len(users)} users")
        return 0
    if args.command == "simulate":
        from hazardhub.simulate import run as run_simulate

        return run_simulate(args, _run)
    if args.command == "jt808" and args.jt808_action is not None:
        from gateway.jt808.bindings import administer

        return administer(args.spool_dir, args.jt808_action, getattr(args, "vehicle", None))
    if args.command == "jt808":  # issue 7: JT/T 808 gateway
        from gateway.jt808 import HoldPolicy, Jt808Gateway
        from hazardhub.settings import registry_follower

        if args.config is None:
            print("error: hazardhub jt808 needs -c CONFIG", file=sys.stderr)
            return 2

        loaded = load(args.config)
        follow = registry_follower(loaded, args.data_dir) if args.data_dir else None
        first = follow() if follow is not None else None  # the first check always gives it
        registry = first if first is not None else loaded.registry()
        if args.name not in registry.config.jt808_gateways:
            print(
                f"error: gateway name {args.name!r} is not in the configuration's "
                f"jt808_gateways {list(registry.config.jt808_gateways)}: the hub would not "
                "watch its status and its MQTT login could not report drops; add it there",
                file=sys.stderr,
            )
            return 2
        if os.environ.get(args.auth_secret_env):
            logging.getLogger("gateway.jt808").info(
                "jt808: $%s is no longer used: auth codes are random and kept in %s",
                args.auth_secret_env,
                args.spool_dir,
            )
        jt = Jt808Gateway(
            registry,
            listen=_hostport(args.listen, 6808),
            broker=_hostport(args.broker, 1883),
            spool_dir=args.spool_dir,
            idle_timeout_s=args.idle_timeout_s,
            auth_timeout_s=args.auth_timeout_s,
            max_connections=args.max_connections,
            max_per_host=args.max_connections_per_host,
            hold_confirmations_s=args.hold_confirmations_s,
            hold=HoldPolicy(live_s=args.hold_live_s),
            spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
            name=args.name,
            username=args.broker_user,
            password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
            follow=follow,
        )

        async def run_jt808(stop: asyncio.Event) -> int:
            await jt.run(stop)
            return 0

        return _run(run_jt808)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
