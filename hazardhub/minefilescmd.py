"""`hazardhub mine-files`: take a coal mine's MT/T 1201 files from the FTP upload folder and
publish them (docs/minefiles.md); `hazardhub mine-files check-points`: list the points whose
mine-side alarm threshold is looser than the hub's rule."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hazardhub.cliargs import add_broker_tls, address, broker_tls, hostport

if TYPE_CHECKING:
    from gateway.minefiles import Mines

__all__ = ["add_minefiles_parser", "run_minefiles"]


def add_minefiles_parser(sub: Any) -> None:
    """Add `mine-files` to the subcommands `sub`."""
    m = sub.add_parser(
        "mine-files",
        help="take coal mines' MT/T 1201 networking files from a folder, publish over MQTT",
    )
    m.add_argument("-c", "--config", type=Path, required=True, help="the hub configuration")
    m.add_argument("--mines", type=Path, required=True, help="the mine-files configuration (YAML)")
    m.add_argument(
        "--state-dir",
        type=Path,
        default=Path("minefiles-state"),
        help="its spool and the mines' point definitions (default: %(default)s)",
    )
    m.add_argument(
        "--broker",
        type=address(1883),
        default="127.0.0.1:1883",
        help="HOST:PORT of the MQTT broker (default: %(default)s)",
    )
    m.add_argument(
        "--broker-user",
        default=None,
        help="MQTT user; the password is read from $HAZARDHUB_MQTT_PASSWORD",
    )
    add_broker_tls(m)
    actions = m.add_subparsers(dest="minefiles_action")
    sim = actions.add_parser(
        "simulate",
        help="write a simulated mine's files (its mapped points) into the incoming folder",
    )
    sim.add_argument("--mine", required=True, help="the mine code (one of the configuration's)")
    sim.add_argument("--period-s", type=float, default=10.0, help="an SS file every N seconds")
    sim.add_argument("--duration-s", type=float, default=None, help="stop after N seconds")
    sim.add_argument(
        "--rise",
        metavar="POINT",
        default=None,
        help="this methane point rises to 1.6 %% 30 s after the start, then falls back",
    )
    actions.add_parser(
        "check-points",
        help="each kept point definition whose alarm threshold is looser than the hub's rule, "
        "or missing; exit 1 if any",
    )


def _mines(args: argparse.Namespace) -> Mines:
    from gateway.minefiles import MineFilesConfig, resolve
    from hazardhub.settings import load, read_text
    from telemetry.registry import parse_document

    registry = load(args.config).registry()
    config = parse_document(read_text(args.mines), MineFilesConfig, str(args.mines))
    return resolve(config, registry, str(args.mines))


def run_minefiles(
    args: argparse.Namespace, run: Callable[[Callable[[asyncio.Event], Awaitable[int]]], int]
) -> int:
    mines = _mines(args)  # a ConfigError is said by `hazardhub.cli.main`
    if args.minefiles_action == "check-points":
        return _check_points(mines, args.state_dir / "points")
    if args.minefiles_action == "simulate":
        return _simulate(mines, args, run)
    from gateway.minefiles import MineFilesGateway

    host, port = hostport(args.broker, 1883)
    gw = MineFilesGateway(
        mines,
        broker_host=host,
        broker_port=port,
        state_dir=args.state_dir,
        username=args.broker_user,
        password=os.environ.get("HAZARDHUB_MQTT_PASSWORD"),
        tls=broker_tls(args),
    )

    async def main(stop: asyncio.Event) -> int:
        await gw.run(stop)
        return 0

    return run(main)


def _check_points(mines: Mines, folder: Path) -> int:
    from gateway.minefiles import check, load_points

    kept = load_points(folder) if folder.is_dir() else {}
    if not kept:
        print(f"no point definitions (JC files) taken yet in {folder}", file=sys.stderr)
        return 0
    bad = 0
    for mine, (source, points) in sorted(kept.items()):
        found = check(mines, mine, points)
        flagged = [f for f in found if f.kind in ("looser", "no_alarm")]
        unmapped = sum(f.kind == "unmapped" for f in found)
        print(
            f"mine {mine} ({source}): {len(points)} points, {len(flagged)} looser than the "
            f"hub or without an alarm threshold, {unmapped} without a hub sensor"
        )
        for f in flagged:
            print(f"  {f.describe()}")
        bad += len(flagged)
    return 1 if bad else 0


def _simulate(
    mines: Mines,
    args: argparse.Namespace,
    run: Callable[[Callable[[asyncio.Event], Awaitable[int]]], int],
) -> int:
    from simulators.mt1201 import MineSimulator, point_of_kind
    from telemetry.clock import wall_ms

    spec = mines.config.mines.get(args.mine)
    if spec is None:
        print(f"mine {args.mine} is not in {args.mines}", file=sys.stderr)
        return 2
    points = []
    for code in spec.points:
        sensor = mines.sensor(args.mine, code)
        if sensor is None:  # `resolve` checked every mapped sensor
            continue
        uppers = [lv.above for lv in sensor.levels if lv.above is not None]
        points.append(
            point_of_kind(
                code,
                sensor.kind,
                sensor.location or sensor.id,
                alarm_high=min(uppers) if uppers else None,
                rise_at_s=30.0 if code == args.rise else None,
            )
        )
    sim = MineSimulator(
        mines.config.incoming, args.mine, tuple(points), start_ms=wall_ms() // 1000 * 1000
    )

    async def main(stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sim.definitions(0.0)
        while not stop.is_set():
            t = loop.time() - t0
            print(sim.real_time(t).name, flush=True)
            if args.duration_s is not None and t + args.period_s > args.duration_s:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.period_s):
                    await stop.wait()
        return 0

    return run(main)
