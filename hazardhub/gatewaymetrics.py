"""`--metrics HOST:PORT` of the gateway commands: the gateway's counters served for Prometheus
beside it (`gateway.metricsserver`; docs/operations.md "A gateway's metrics")."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.metricsserver import Collect, MetricsServer, metrics_problem
from hazardhub.cliargs import address, hostport

__all__ = ["TOKEN_ENV", "add_metrics", "run_with_metrics"]

TOKEN_ENV = "HAZARDHUB_METRICS_TOKEN"  # noqa: S105 (the variable's name)
Main = Callable[[asyncio.Event], Awaitable[int]]


def add_metrics(parser: Any, default_port: int) -> None:
    """Add `--metrics` to a gateway command's `parser`."""
    parser.add_argument(
        "--metrics",
        type=address(default_port, listen=True),
        default=None,
        metavar="HOST:PORT",
        help="serve the gateway's counters for Prometheus at http://HOST:PORT/metrics (default: "
        f"none; an address other than loopback needs ${TOKEN_ENV}, sent as a bearer token)",
    )


def run_with_metrics(args: argparse.Namespace, command: str, default_port: int, gateway: str,
                     collect: Collect, main: Main, run: Callable[[Main], int]) -> int:  # fmt: skip
    """`run(main)` (the command's signal-aware runner), with the gateway's metrics served
    beside it when `--metrics` asks; an address that cannot be served said (exit 2)."""
    if args.metrics is None:
        return run(main)
    host, port = hostport(args.metrics, default_port)
    token = os.environ.get(TOKEN_ENV) or None
    if (bad := metrics_problem(host, token)) is not None:
        print(f"hazardhub {command}: {bad}", file=sys.stderr)
        return 2
    server = MetricsServer((host, port), gateway, collect, token)

    async def both(stop: asyncio.Event) -> int:
        try:
            await server.start()
        except OSError as exc:
            print(f"hazardhub {command}: --metrics {args.metrics}: {exc}", file=sys.stderr)
            return 2
        async with asyncio.TaskGroup() as tg:
            tg.create_task(server.run(stop), name="metrics")
            try:
                return await main(stop)
            finally:
                stop.set()  # (the gateway ended by itself: so does the metrics server)

    return run(both)
