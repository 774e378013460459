"""The chaos report as a table for the terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def render(report: dict[str, Any]) -> str:
    r, a, p = report["readings"], report["alarms"], report["positions"]
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
        f"{'positions':<34}{'count':>10}",
        f"{'  recorded (GPS recorders)':<34}{p['recorded']:>10}",
        f"{'  not sent (dropped by a recorder)':<34}{p['not_sent']:>10}",
        f"{'  sent (published to the broker)':<34}{p['sent']:>10}",
        f"{'  stored (InfluxDB)':<34}{p['stored']:>10}",
        f"{'  speed readings stored':<34}{p['speed_readings']:>10}",
        f"{'  duplicated in the store':<34}{p['duplicated']:>10}",
        f"{'  unexpected in the store':<34}{p['unexpected']:>10}",
        f"{'  altered in the store':<34}{p['altered']:>10}",
        f"{'  lost':<34}{p['lost']:>10}",
        f"{'  positions re-sent after a fault':<34}{p['redeliveries']:>10}",
        "",
        f"{'alarm transitions':<34}{'count':>10}",
        f"{'  expected (fault-free run)':<34}{a['expected']:>10}",
        f"{'  seen (faulted run)':<34}{a['seen']:>10}",
        f"{'  matched':<34}{a['matched']:>10}",
        f"{'  worst event-time skew, ms':<34}{a['worst_skew_ms']:>10} (±{a['tolerance_ms']})",
        f"{'  of the fleet: expected, matched':<34}{a['fleet_expected']:>10}"
        f" {a['fleet_matched']:>4}",
        f"{'  fleet worst skew, ms':<34}{a['fleet_worst_skew_ms']:>10}",
        "",
        f"{'fault':<12}{'at s':>7}{'down s':>8}{'readings':>10}{'positions':>10}"
        f"{'catch-up s':>12}{'positions s':>13}",
    ]
    for f in report["faults"]:
        c, cp = (
            "never" if x is None else f"{x:.1f}"
            for x in (f["catch_up_s"], f["positions_catch_up_s"])
        )
        lines.append(
            f"{f['kind']:<12}{f['at_s']:>7.0f}{f['down_s']:>8.1f}{f['readings_before_end']:>10}"
            f"{f['positions_before_end']:>10}{c:>12}{cp:>13}"
        )
    lines.append(f"longest catch-up: {report['longest_catch_up_s']} s")
    lines.append("")
    lines.append(f"{'expected alarm timeline':<44}{'t s':>8}   seen t s")
    seen: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for e in a["seen_timeline"]:  # in event-time order: the n-th seen for the n-th expected
        seen.setdefault((e["sensor"], e["side"], e["kind"], e["level"]), []).append(e)
    for e in a["expected_timeline"]:
        same = seen.get((e["sensor"], e["side"], e["kind"], e["level"]))
        s = same.pop(0) if same else None
        name = f"{e['sensor']} {e['kind']} {e['level']}"
        lines.append(f"  {name:<42}{e['t_s']:>8.2f}   {s['t_s'] if s else '-':>8}")
    for d in a["differences"]:
        lines.append(f"  DIFFERS: {d}")
    for s in r["lost_sample"] + p["lost_sample"]:
        lines.append(f"  LOST: {s}")
    if report["exit_codes"] and any(c != 0 for c in report["exit_codes"].values()):
        lines.append(f"  unclean exits: {report['exit_codes']}")
    return "\n".join(lines)
