"""The Prometheus configuration and rules file of docs/operations.md, read from the doc and checked
as an operator would load them (helper-233's deploy review: the prometheus.yml had no
`rule_files:`, so no rule ever loaded; `HazardhubNotReady` read a job `hazardhub-readyz` no doc
defined; and an InfluxDB outage paged nobody, since of the table's `page` rows only eight were in
the rules file, none of them `hazardhub_store_inner_up`).

promtool (Debian's `prometheus` package) checks the files and runs the rules on made-up series
when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_metrics_documented import _in_the_code, zeros

from ingest.metrics import store_metrics
from ingest.store.buffered import BufferStats

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
CONFIG = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/rules/hazardhub.yml"
_NAME = re.compile(r"hazardhub_[a-z0-9_]*[a-z0-9]")


def _block(path: str) -> str:
    """The fenced YAML block of the doc that begins with the comment naming `path`."""
    head = f"```yaml\n# {path}\n"
    assert DOC.count(head) == 1, f"one block of {path} in docs/operations.md"
    start = DOC.index(head) + len("```yaml\n")
    return DOC[start : DOC.index("\n```", start)] + "\n"


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(_block(RULES))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _page_rows() -> list[str]:
    """The first cell of each row marked `page` in the monitoring section's tables."""
    section = DOC[DOC.index("## Monitoring the hub") : DOC.index("### Prometheus: the scrape")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[-1].startswith("page"):
            rows.append(cells[0])
    return rows


def test_prometheus_loads_the_rules_and_scrapes_every_job_they_name() -> None:
    config = yaml.safe_load(_block(CONFIG))
    assert RULES in config["rule_files"], config.get("rule_files")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    named = {j for rule in _rules() for j in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert named >= {"hazardhub", "hazardhub-readyz", "hazardhub-healthz"}, named
    assert named <= set(jobs), sorted(named - set(jobs))
    for probe in ("hazardhub-readyz", "hazardhub-healthz"):
        job = jobs[probe]
        assert job["metrics_path"] == "/probe" and job["params"] == {"module": ["http_2xx"]}
        (target,) = job["static_configs"][0]["targets"]
        assert target.startswith("https://") and target.endswith(probe.split("-")[1]), target
        relabel = {r["target_label"]: r for r in job["relabel_configs"]}
        assert relabel["__param_target"]["source_labels"] == ["__address__"]
        assert relabel["__address__"]["replacement"].endswith(":9115")  # the exporter


def test_every_page_row_is_a_rule_on_metrics_the_hub_serves() -> None:
    exprs = " ".join(rule["expr"] for rule in _rules())
    rows = _page_rows()
    assert len(rows) > 20, rows
    for first in rows:
        metric = _NAME.search(first)
        if metric is not None:
            assert metric.group() in exprs, f"the page row {first} is in no rule"
    served = set(_in_the_code()) | set(
        re.findall(r"^# TYPE (\S+)", store_metrics(zeros(BufferStats)), re.M)
    )
    unknown = sorted(set(_NAME.findall(exprs)) - served)
    assert not unknown, f"rules on metrics the hub does not serve: {unknown}"
    assert all(rule["labels"]["severity"] == "page" for rule in _rules())


PROMTOOL = shutil.which("promtool")


def test_promtool_takes_the_files_and_an_influxdb_outage_pages(tmp_path: Path) -> None:
    """The outage of the review: InfluxDB killed, `/readyz` ready, the retries at 0, only
    `hazardhub_store_inner_up` at 0. It must page after 5 minutes; so must a 503 of /readyz."""
    if PROMTOOL is None:  # (never skipped: `make test` installs it, as it does mosquitto)
        pytest.fail("promtool (Debian's prometheus) is not installed: run make test", False)
    here = str(tmp_path) + "/"
    (tmp_path / "rules").mkdir()
    (tmp_path / "hazardhub.key").write_text("hh_example")
    (tmp_path / "prometheus.yml").write_text(_block(CONFIG).replace("/etc/prometheus/", here))
    (tmp_path / "rules" / "hazardhub.yml").write_text(_block(RULES))
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout, checked.stdout
    cases = {
        "rule_files": [str(tmp_path / "rules" / "hazardhub.yml")],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": "hazardhub_store_inner_up", "values": "1 0x40"},
                    {"series": "hazardhub_store_retries_total", "values": "0x40"},
                    {
                        "series": 'probe_success{job="hazardhub-readyz"}',
                        "values": "1x40",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "HazardhubInfluxDown", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "HazardhubInfluxDown",
                        "exp_alerts": [{"exp_labels": {"severity": "page"}}],
                    },
                    {"eval_time": "6m", "alertname": "HazardhubStoreRetrying", "exp_alerts": []},
                    {"eval_time": "6m", "alertname": "HazardhubNotReady", "exp_alerts": []},
                ],
            },
            {
                "interval": "15s",
                "input_series": [
                    {
                        "series": 'probe_success{job="hazardhub-readyz",instance="x"}',
                        "values": "1 0x10",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "2m",
                        "alertname": "HazardhubNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "page",
                                    "job": "hazardhub-readyz",
                                    "instance": "x",
                                }
                            }
                        ],
                    }
                ],
            },
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(cases))
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "tests.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
