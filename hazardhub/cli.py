"""The `hazardhub` command: demo, hub, gateway, jt808, jt809, check, backup and the others.

The running of each subcommand; their arguments are parsed by `hazardhub.cliargs`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from hazardhub import logsetup, loopfaults
from hazardhub.cliargs import (
    broker_tls,
    hostport,
    influx_url_problem,
    influx_with_login,
    parser,
    secrets_in_argv,
)
from hazardhub.startchecks import api_address_problem, folder_problem
from telemetry.brokertls import BrokerTlsError
from telemetry.errors import ConfigError
from telemetry.registrychecks import check_plates, critical_t_notices

__all__ = ["main"]


def _run(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run `main` until it returns; SIGINT, SIGTERM and SIGHUP ask it to stop cleanly (a SIGHUP,
    a closed terminal or the habit of mosquitto's and nginx's reload, killed the hub outright:
    no state saved, helper-149; the configuration is reloaded through the API, not by a
    signal)."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loopfaults.install(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def hung_up() -> None:
            logging.getLogger("hazardhub").warning(
                "SIGHUP: stopping cleanly (a configuration is reloaded through the API: "
                "PUT /api/v1/config, not by a signal)"
            )
            stop.set()

        loop.add_signal_handler(signal.SIGHUP, hung_up)
        return await main(stop)

    return asyncio.run(runner())


def _folders_problem(command: str, *folders: tuple[str, Path | None]) -> bool:
    """Say (stderr, one line) the first of `folders` that cannot be used; True if one was."""
    for option, path in folders:
        if path is not None and (bad := folder_problem(option, path)) is not None:
            print(f"hazardhub {command}: {bad}", file=sys.stderr)
            return True
    return False


def _say_broker_owner(out: Path) -> None:
    """Mosquitto reads its password and ACL files as its own user (Debian: `mosquitto`): say
    so when the files just written (mode 0600) are another user's."""
    try:
        broker = pwd.getpwnam("mosquitto").pw_uid
    except KeyError:  # no such user here: the broker runs elsewhere, or as another
        return
    files = [out / "passwd", out / "acl"]
    if all(f.stat().st_uid == broker for f in files):
        return
    print(
        f"note: {files[0]} and {files[1]} are mode 0600 and not user mosquitto's, who runs "
        f"Mosquitto: give them to it, once (the next runs keep the owner): "
        f"chown mosquitto: {files[0]} {files[1]}",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logsetup.configure(args.verbose)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except BrokerTlsError as exc:  # a TLS option's file: one line, before anything starts
        print(f"hazardhub {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # imported here, not before the command: `alerts` is most of a second to import, and
        # a fleet's error comes from it, imported by then
        from alerts.vehicles import FleetConfigError

        if not isinstance(exc, FleetConfigError):
            raise
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _dispatch(args: argparse.Namespace) -> int:
    from hazardhub.settings import load

    if args.command == "check":
        from alerts.vehicles import FleetConfigError, compile_fleet

        loaded = load(args.config)
        reg = loaded.registry()
        check_plates(reg.config, str(args.config))  # (a hub warns: it runs what ran before)
        try:
            fleet = compile_fleet(reg.config.fleet, reg.vehicles.values())  # corridors' vehicles
        except FleetConfigError as exc:  # (says the place in `fleet:`, not the file: add it)
            raise FleetConfigError(f"{args.config}: fleet.{exc}") from exc
        for line in critical_t_notices(reg.config):  # (the hub warns of them at start too)
            print(f"{args.config}: warning: {line}", file=sys.stderr)
        counts = (
            (len(reg.tenants), "tenant"),
            (len(reg.devices), "device"),
            (len(reg.sensors), "sensor"),
            (len(reg.vehicles), "vehicle"),
            (len(reg.config.fleet.geofences), "geofence"),
        )
        said = ", ".join(_plural(n, what) for n, what in counts)
        print(f"{args.config}: ok: {said} over {_plural(len(fleet), 'vehicle')}")
        return 0
    if args.command == "demo":
        host, port = hostport(args.api, 8000)
        loaded = load(args.config)  # read and checked once: early, with a clear message
        registry = loaded.registry()
        if _folders_problem("demo", ("--data-dir", args.data_dir)):
            return 2
        if (busy := api_address_problem(host, port)) is not None:
            print(f"hazardhub demo: {busy}", file=sys.stderr)
            return 2
        from hazardhub.demo import DemoOptions, run_demo  # (the hub: seconds, after the checks)

        opts = DemoOptions(
            config=args.config,
            data_dir=args.data_dir,
            api_host=host,
            api_port=port,
            broker_port=args.broker_port,
            keep_data=args.keep_data,
        )
        return _run(lambda stop: run_demo(opts, stop, loaded=loaded, registry=registry))
    if args.command == "hub":
        # the arguments and the configuration checked before the hub and its API are imported
        # (seconds): a start refused says so at once
        bhost, bport = hostport(args.broker, 1883)
        ahost, aport = hostport(args.api, 8000)
        influx = args.influx
        if influx is not None and (bad := influx_url_problem(influx)) is not None:
            print(f"hazardhub hub: {bad}", file=sys.stderr)
            return 2
        if influx is None and args.influx_user is not None:
            print("hazardhub hub: --influx-user needs --influx", file=sys.stderr)
            return 2
        for warning in secrets_in_argv(args):  # in the process list: said, not refused
            logging.getLogger("hazardhub").warning("%s", warning)
        if influx is not None:
            try:
                influx = influx_with_login(
                    influx, args.influx_user, os.environ.get("HAZARDHUB_INFLUX_PASSWORD")
                )
            except ValueError as exc:
                print(f"hazardhub hub: {exc}", file=sys.stderr)
                return 2
        tls = broker_tls(args)
        loaded = load(args.config)
        registry = loaded.registry()
        spool = (args.spool_dir or args.data_dir / "spool") if args.influx else None
        if _folders_problem("hub", ("--data-dir", args.data_dir), ("--spool-dir", spool)):
            return 2
        if (busy := api_address_problem(ahost, aport)) is not None:
            print(f"hazardhub hub: {busy}", file=sys.stderr)
            return 2
        from hazardhub.hub import ApiStartError, Hub, HubSettings

        hub = Hub(
            registry,
            HubSettings(
                data_dir=args.data_dir,
                broker_host=bhost,
                broker_port=bport,
                influx_url=influx,
                influx_database=args.influx_db,
                influx_token=args.influx_token or os.environ.get("HAZARDHUB_INFLUX_TOKEN"),
                influx_org=args.influx_org,
                influx_bucket=args.influx_bucket,
                influx_retention=None
                if args.influx_retention.lower() == "none"
                else args.influx_retention,
                influx_alarm_retention=args.influx_alarm_retention,
                spool_dir=args.spool_dir,
                spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
                api_host=ahost,
                api_port=aport,
                client_id=args.client_id,
                broker_username=args.broker_user,
                broker_password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
                broker_tls=tls,
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
        from hazardhub.gatewaymetrics import run_with_metrics
        from telemetry.topics import TopicLayout

        registry = load(args.config).registry()
        bhost, bport = hostport(args.broker, 1883)
        if not any(
            d.tenant == args.tenant and d.spec.gateway == args.gateway
            for d in registry.devices.values()
        ):
            print(
                f"no devices of tenant {args.tenant!r} use gateway {args.gateway!r}",
                file=sys.stderr,
            )
            return 2
        if _folders_problem("gateway", ("--spool-dir", args.spool_dir)):
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
            tls=broker_tls(args),
        )

        async def run_gw(stop: asyncio.Event) -> int:
            await gw.run(stop)
            return 0

        return run_with_metrics(args, "gateway", 9101, args.gateway, gw.metrics, run_gw, _run)
    if args.command == "mqtt-credentials":
        from hazardhub.mqttauth import (
            alarm_readers,
            dropped_users,
            kept_passwords,
            plan_users,
            write_files,
        )
        from hazardhub.settings import running_registry
        from telemetry.topics import TopicLayout

        loaded = load(args.config)
        registry = running_registry(loaded, args.data_dir) if args.data_dir else loaded.registry()
        # the alarm readers of the runs before, kept, with those asked now, but those dropped
        readers = {*alarm_readers(args.out), *args.alarm_reader} - set(args.drop_alarm_reader)
        users = plan_users(registry, TopicLayout(), readers=tuple(sorted(readers)))
        gone = [u for u in dropped_users(users, args.out) if u not in args.drop_alarm_reader]
        if not args.rotate:
            users = kept_passwords(users, args.out)
        write_files(users, args.out)
        print(f"wrote {args.out}/passwd, acl and credentials.txt for {len(users)} users")
        if gone:  # helper-149: tenants added through the API lost their logins unsaid
            hint = (
                ""
                if args.data_dir
                else ": were they added through the API? Their tenants, gateways and sites are "
                "in the hub's data folder: run again with --data-dir (they get new passwords)"
            )
            said = f"{len(gone)} user{'s' if len(gone) > 1 else ''}"
            print(
                f"warning: {said} of {args.out}/credentials.txt not in this configuration "
                f"lost the login: {', '.join(gone)}{hint}",
                file=sys.stderr,
            )
        _say_broker_owner(args.out)
        return 0
    if args.command == "backup":
        from hazardhub.backup import back_up

        try:
            copied = back_up(args.source, args.to)
        except ValueError as exc:
            print(f"hazardhub backup: {exc}", file=sys.stderr)
            return 2
        for c in copied:
            print(f"{args.to / c.name}  {c.size} bytes  ({c.how})")
        print(f"copied {len(copied)} files of {args.source} into {args.to}")
        return 0
    if args.command == "restored":
        from hazardhub.backup import mark_folder_restored

        try:
            marked = mark_folder_restored(args.data_dir)
        except ValueError as exc:
            print(f"hazardhub restored: {exc}", file=sys.stderr)
            return 2
        print(
            f"{marked}: marked restored; the hub's next start begins a new key series and "
            "numbers alarms and events on from far above"
        )
        return 0
    if args.command == "simulate":
        from hazardhub.simulate import run as run_simulate

        return run_simulate(args, _run)
    if args.command == "jt808" and args.jt808_action is not None:
        from gateway.jt808.bindings import administer

        return administer(args.spool_dir, args.jt808_action, getattr(args, "vehicle", None))
    if args.command == "jt808":  # issue 7: JT/T 808 gateway
        from gateway.jt808 import HoldPolicy, Jt808Gateway
        from hazardhub.gatewaymetrics import run_with_metrics
        from hazardhub.jt808args import packet_policy
        from hazardhub.settings import beside_hub, vehicle_gateway_problem

        if args.config is None:
            print("error: hazardhub jt808 needs -c CONFIG", file=sys.stderr)
            return 2

        registry, follow = beside_hub(load(args.config), args.data_dir)
        if (bad := vehicle_gateway_problem(args.name, registry)) is not None:
            print(f"error: {bad}", file=sys.stderr)
            return 2
        if _folders_problem("jt808", ("--spool-dir", args.spool_dir)):
            return 2
        if os.environ.get(args.auth_secret_env):
            logging.getLogger("gateway.jt808").info(
                "jt808: $%s is no longer used: auth codes are random and kept in %s",
                args.auth_secret_env,
                args.spool_dir,
            )
        jt = Jt808Gateway(
            registry,
            listen=hostport(args.listen, 6808),
            broker=hostport(args.broker, 1883),
            spool_dir=args.spool_dir,
            idle_timeout_s=args.idle_timeout_s,
            auth_timeout_s=args.auth_timeout_s,
            max_connections=args.max_connections,
            max_per_host=args.max_connections_per_host,
            hold_confirmations_s=args.hold_confirmations_s,
            hold=HoldPolicy(live_s=args.hold_live_s),
            packets=packet_policy(args),
            spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
            name=args.name,
            username=args.broker_user,
            password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
            tls=broker_tls(args),
            follow=follow,
        )

        async def run_jt808(stop: asyncio.Event) -> int:
            await jt.run(stop)
            return 0

        return run_with_metrics(args, "jt808", 9108, args.name, jt.metrics, run_jt808, _run)
    if args.command == "mine-files":
        from hazardhub.minefilescmd import run_minefiles

        return run_minefiles(args, _run)
    if args.command == "jt809":  # JT/T 809 upper-platform gateway (docs/jt809.md)
        from hazardhub.jt809cmd import run as run_jt809

        return run_jt809(args, _run)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
