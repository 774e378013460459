"""`hazardhub mine-files`: take a coal mine's MT/T 1201 files from the FTP upload folder and
publish them (docs/minefiles.md); `hazardhub mine-files check-points`: list the points whose
mine-side alarm threshold is looser than the hub's rule; `hazardhub mine-files draft-config`:
a draft of a mine's configuration from its point definitions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hazardhub.cliargs import add_broker_tls, address, broker_tls, hostport
from hazardhub.gatewaymetrics import add_metrics, run_with_metrics

if TYPE_CHECKING:
    from gateway.minefiles import Mines
    from telemetry.config import HubConfig

__all__ = ["add_minefiles_parser", "run_minefiles"]

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a hub id (telemetry.configbase)


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
    add_metrics(m, 9112)
    actions = m.add_subparsers(dest="minefiles_action")
    sim = actions.add_parser(
        "simulate",
        help="write a simulated mine's files (its mapped points) into its upload folder",
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
    sim.add_argument(
        "--encoding",
        choices=("utf-8", "gb18030"),
        default=None,
        help="write the files in this encoding (gb18030: GBK, as many KJ systems do; default: "
        "the mine's encoding:, utf-8 for auto)",
    )
    draft = actions.add_parser(
        "draft-config",
        help="a draft of a mine's hub configuration and point map from its point definitions "
        "(JC), with proposed rules to check",
    )
    draft.add_argument("--mine", required=True, help="the mine code")
    draft.add_argument("--site", default=None, help="the hub's site (default: the mine's)")
    draft.add_argument("--tenant", default=None, help="the tenant (default: the mine's in --mines)")
    draft.add_argument(
        "--device",
        default="kj",
        help="the id of the hub device drafted in the site (default: %(default)s)",
    )
    draft.add_argument(
        "--jc",
        type=Path,
        default=None,
        help="a JC file to draft from (default: the latest kept for the mine in --state-dir)",
    )
    draft.add_argument(
        "--encoding",
        choices=("utf-8", "gb18030", "auto"),
        default=None,
        help="the --jc file's encoding (default: the mine's encoding: in --mines, else utf-8)",
    )
    draft.add_argument(
        "--period-s",
        type=float,
        default=None,
        help="the mine's upload period (default: from its latest real-time files in done/)",
    )
    draft.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write {mine}.hub.yaml and {mine}.mines.yaml into this folder (default: print)",
    )
    actions.add_parser(
        "check-points",
        help="each kept point definition whose alarm threshold is looser than the hub's rule, "
        "or missing, or a gas point the hub has no rule for (exit 1 if any); then the other "
        "points without a rule, and those the hub alarms later than the mine (info)",
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
    if args.minefiles_action == "draft-config":
        return _draft_config(args)
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

    def collect() -> tuple[dict[str, int], dict[str, float]]:
        counters = dict(gw.counters)
        for tenant, pub in gw.publishers.items():  # (each tenant's uplink: publish_refused)
            counters.update((f"{tenant}.{k}", n) for k, n in pub.counters.items())
        pubs = gw.publishers.values()
        state = {
            "mines": float(len(mines.config.mines)),
            "files_in_flight": float(gw.in_flight),
            "spool_batches": float(sum(p.pending for p in pubs)),
            "broker_connected": float(all(p.connected.is_set() for p in pubs)),
        }
        return counters, state

    return run_with_metrics(args, "mine-files", 9112, "mine-files", collect, main, run)


def _check_points(mines: Mines, folder: Path) -> int:
    from gateway.minefiles import check, load_points

    kept = load_points(folder) if folder.is_dir() else {}
    if not kept:
        print(f"no point definitions (JC files) taken yet in {folder}", file=sys.stderr)
        return 0
    bad = 0
    for mine, (source, points) in sorted(kept.items()):
        found = check(mines, mine, points)
        flagged = [f for f in found if f.gap]
        no_rule = [f for f in found if f.kind == "no_rule" and not f.gap]
        info = [f for f in found if f.kind == "hub_looser"]
        unmapped = sum(f.kind == "unmapped" for f in found)
        print(
            f"mine {mine} ({source}): {len(points)} points, {len(flagged)} looser than the "
            f"hub, without an alarm threshold or a gas without a hub rule, {unmapped} without "
            "a hub sensor"
        )
        for f in flagged:
            print(f"  {f.describe()}")
        for f in no_rule:
            print(f"  (no rule) {f.describe()}")
        for f in info:
            print(f"  (info) {f.describe()}")
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
        mines.config.folder_of(args.mine),
        args.mine,
        tuple(points),
        start_ms=wall_ms() // 1000 * 1000,
        encoding=args.encoding or ("gb18030" if spec.encoding == "gb18030" else "utf-8"),
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


def _device_problem(
    config: HubConfig, tenant: str, site: str, device: str, where: Path
) -> str | None:
    """Why a device `device` cannot be drafted into `site`: not a hub id, or the site has it."""
    if not _IDENT.match(device):
        return (
            f"--device {device!r}: a device id is 1-64 of A-Z a-z 0-9 _ . - "
            "(a letter or digit first)"
        )
    for t in config.tenants:
        for s in t.sites if t.id == tenant else ():
            if s.id == site and any(d.id == device for d in s.devices):
                return (
                    f"site {site} of {tenant} in {where} already has a device {device!r}: give "
                    f"the draft another with --device (e.g. --device {device}-2), or, to draft "
                    "this mine's device again, take the old one (and its profile) out of the "
                    "configuration first; to add points to it, merge the drafted sensors and "
                    "profile points into it by hand"
                )
    return None


def _draft_config(args: argparse.Namespace) -> int:
    """Print (or write) a draft of a mine's configuration from its definitions: the JC file
    given, or the latest kept; the upload period from its latest real-time files in done/."""
    from gateway.minefiles import MineFilesConfig, load_points
    from gateway.minefiles.draft import PERIODS, draft, upload_period
    from gateway.minefiles.folder import recent_names
    from hazardhub.settings import load, read_text
    from telemetry.mt1201 import Mt1201Error, PointDef, parse, parse_name
    from telemetry.mt1201text import TextError
    from telemetry.registry import parse_document

    hub = load(args.config)
    packs = {p.name: p for p in hub.packs}
    config = parse_document(read_text(args.mines), MineFilesConfig, str(args.mines))
    spec = config.mines.get(args.mine)
    tenant = args.tenant or (spec.tenant if spec else None)
    site = args.site or (spec.site if spec else None)
    if tenant is None or site is None:
        print(f"mine {args.mine} is not in {args.mines}: give --tenant and --site", file=sys.stderr)
        return 2
    if problem := _device_problem(hub.config, tenant, site, args.device, args.config):
        print(problem, file=sys.stderr)
        return 2
    if args.jc is not None:
        encoding = args.encoding or (spec.encoding if spec else "utf-8")
        try:
            kind = parse_name(args.jc.name).kind
            parsed = parse(args.jc.read_bytes(), kind, encoding)
        except (OSError, Mt1201Error) as exc:
            cause = exc.__cause__
            hint = ""
            if isinstance(cause, TextError) and cause.suggest:
                hint = f" (here: --encoding {cause.suggest})"
            print(f"{args.jc}: {exc}{hint}", file=sys.stderr)
            return 2
        if kind != "JC":
            print(f"{args.jc}: a {kind} file, not point definitions (JC)", file=sys.stderr)
            return 2
        source = args.jc.name
        points = [r for r in parsed.records if isinstance(r, PointDef)]
    else:
        folder = args.state_dir / "points"
        kept = load_points(folder) if folder.is_dir() else {}
        if args.mine not in kept:
            print(
                f"no point definitions (JC file) of mine {args.mine} kept in {folder}: run "
                "mine-files until its JC file is taken, or give --jc",
                file=sys.stderr,
            )
            return 2
        source, points = kept[args.mine]
    if not points:
        print(f"{source}: no point definition to draft from", file=sys.stderr)
        return 2
    if args.period_s is not None:
        period: tuple[float, int] | None = (args.period_s, 0)
    else:
        names = recent_names(config.done_dir, f"{args.mine}_", PERIODS)
        period = upload_period(names, args.mine)
    made = draft(
        args.mine,
        points,
        packs,
        tenant=tenant,
        site=site,
        gateway=config.gateway,
        source=source,
        period=period,
        device=args.device,
    )
    said = (
        f"mine {args.mine}: {made.points} points, {made.rules} with a proposed rule to check, "
        f"{made.unknown} of a type not known"
    )
    if args.out is None:
        print(made.hub + "---\n" + made.mines, end="")
        print(said, file=sys.stderr)
        return 0
    targets = [(args.out / f"{args.mine}.hub.yaml", made.hub)]
    targets.append((args.out / f"{args.mine}.mines.yaml", made.mines))
    for path, _ in targets:
        if path.exists():
            print(f"{path} exists: move it away first (it may hold your edits)", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for path, text in targets:
        path.write_text(text, encoding="utf-8")
    print(f"{said}; written: {targets[0][0]}, {targets[1][0]}", file=sys.stderr)
    return 0
