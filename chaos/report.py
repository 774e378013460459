"""The chaos report as a table for the terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def render(report: dict[str, Any]) -> str:
    r, a = report["readings"], report["alarms"]
    lines = [
        f"chaos run ({report['plan']}, {report['duration_s']} s): "
        + ("PASSED" if report["passed"] else "FAILED"),
        "",
        f"{'readings':<34}{'count':>10}",
        f"{'  sent (published by the gateway)':<34}{r['sent']:>10}",
        f"{'  stored (InfluxDB)':<34}{r['stored']:>10}",
        f"{'  duplicated in the store':<34}{r['duplicated']:>10}",
        f"{'  unexpected in the store':<34}{r['unexpected']:>10}",
        f"{'  lost':<34}{r['lost']:>10}",
        f"{'  batches (gateway lives)':<34}{r['batches_published']:>10} ({r['epochs']})",
        f"{'  batches re-sent after a fault':<34}{r['batch_redeliveries']:>10}",
        f"{'  sequence gaps':<34}{r['seq_gaps']:>10}",
        "",
        f"{'alarm transitions':<34}{'count':>10}",
        f"{'  expected (fault-free run)':<34}{a['expected']:>10}",
        f"{'  seen (faulted run)':<34}{a['seen']:>10}",
        f"{'  matched':<34}{a['matched']:>10}",
        f"{'  worst event-time skew, ms':<34}{a['worst_skew_ms']:>10} (±{a['tolerance_ms']})",
        "",
        f"{'fault':<12}{'at s':>7}{'down s':>8}{'readings':>10}{'catch-up s':>12}",
    ]
    for f in report["faults"]:
        c = "never" if f["catch_up_s"] is None else f"{f['catch_up_s']:.1f}"
        lines.append(
            f"{f['kind']:<12}{f['at_s']:>7.0f}{f['down_s']:>8.1f}{f['readings_before_end']:>10}"
            f"{c:>12}"
        )
    lines.append(f"longest catch-up: {report['longest_catch_up_s']} s")
    lines.append("")
    lines.append(f"{'expected alarm timeline':<40}{'t s':>8}   seen t s")
    seen = {(e["sensor"], e["kind"], e["level"]): e for e in a["seen_timeline"]}
    for e in a["expected_timeline"]:
        s = seen.get((e["sensor"], e["kind"], e["level"]))
        name = f"{e['sensor']} {e['kind']} {e['level']}"
        lines.append(f"  {name:<38}{e['t_s']:>8.2f}   {s['t_s'] if s else '-':>8}")
    for d in a["differences"]:
        lines.append(f"  DIFFERS: {d}")
    for s in r["lost_sample"]:
        lines.append(f"  LOST: {s}")
    if report["exit_codes"] and any(c != 0 for c in report["exit_codes"].values()):
        lines.append(f"  unclean exits: {report['exit_codes']}")
    return "\n".join(lines)
