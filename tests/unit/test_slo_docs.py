"""docs/slo.md, docs/dr.md and the runbook (docs/operations.md) state the template's numbers.

Each page's tables are read as the reader reads them and compared with
template.yaml: the burn-rate alarms' windows and thresholds, the SLO behind
the thresholds and the dashboard's budget, the settings docs/dr.md lists
(resource, property path, value), and the retention and time limits the
runbook relies on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_template import _sub, _template

DOCS = Path(__file__).resolve().parents[2] / "docs"
WINDOW = {"5 min": 300, "30 min": 1800, "1 h": 3600, "2 h": 7200, "6 h": 21600, "24 h": 86400}
PAGE = {"If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}


def _rows(page: str, header_start: str) -> list[list[str]]:
    """The body rows of the table whose header row starts with ``header_start``."""
    lines = (DOCS / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = _template()["Resources"][name]["Properties"]
    return props


def _windows(composite: str) -> list[dict[str, Any]]:
    names = re.findall(r"\$\{(\w+)\.Arn\}", _sub(_props(composite)["AlarmRule"]))
    return [_props(n) for n in names]


def _period(window: dict[str, Any]) -> int:
    (period,) = {m["MetricStat"]["Period"] for m in window["Metrics"] if "MetricStat" in m}
    return int(period)


def _objective() -> float:
    """The availability objective docs/slo.md states (99.9 %) as a fraction."""
    (row,) = [r for r in _rows("slo.md", "| SLO |") if r[0] == "availability"]
    return float(row[2].rstrip(" %")) / 100


def test_the_availability_burn_rate_table_is_the_templates() -> None:
    budget = 1 - _objective()
    rows = _rows("slo.md", "| alarm (availability) |")
    assert len(rows) == 3
    for alarm, long_w, short_w, rate, threshold, _spent, action in rows:
        name = alarm.strip("`")
        windows = _windows(name)
        assert [_period(w) for w in windows] == [WINDOW[long_w], WINDOW[short_w]], name
        assert {w["Threshold"] for w in windows} == {float(threshold)}, name
        assert float(threshold) == pytest.approx(float(rate) * budget * 100), name
        expected = [PAGE] if action == "page" else [{"Ref": "SloTicketTopic"}]
        assert _props(name)["AlarmActions"] == expected, name


def test_the_latency_burn_rate_table_is_the_templates() -> None:
    rows = _rows("slo.md", "| alarm (latency) |")
    assert len(rows) == 2
    for alarms, long_w, short_w, rate, threshold, action in rows:
        names = re.findall(r"`(\w+)`", alarms)
        assert len(names) == 2 and action == "page"
        for name in names:
            windows = _windows(name)
            assert [_period(w) for w in windows] == [WINDOW[long_w], WINDOW[short_w]], name
            assert {w["Threshold"] for w in windows} == {float(threshold)}, name
            assert float(threshold) == pytest.approx(float(rate) * 1.0), name  # budget 1 %
            assert _props(name)["AlarmActions"] == [PAGE], name


def test_the_dashboards_budget_is_the_slos() -> None:
    budget = round(1 - _objective(), 6)
    body = _sub(_props("Dashboard")["DashboardBody"])
    assert f"(bad / all) / {budget:g}" in body
    assert "budget left (SLO 99.9 %)" in body
    assert "The dashboard (output `DashboardName`) shows **the availability budget left" in (
        (DOCS / "slo.md").read_text()
    )


def _resolve(path: str) -> Any:
    """``Resource.Property.0.Key`` in the template; an ``!If`` gives its first branch
    (the setting as docs/dr.md describes it: turned on)."""
    name, *keys = path.split(".")
    node: Any = _props(name)
    for key in keys:
        while isinstance(node, dict) and set(node) == {"If"}:
            node = node["If"][1]
        node = node[int(key)] if isinstance(node, list) else node[key]
    while isinstance(node, dict) and set(node) == {"If"}:
        node = node["If"][1]
    return node


def test_the_settings_docs_dr_lists_are_the_templates() -> None:
    rows = _rows("dr.md", "| template setting |")
    assert len(rows) >= 5
    for setting, value in rows:
        assert str(_resolve(setting.strip("`"))) == value, setting


def test_the_runbook_states_the_templates_retention_and_limits() -> None:
    runbook = " ".join((DOCS / "operations.md").read_text().split())  # lines unwrapped
    dr = " ".join((DOCS / "dr.md").read_text().split())
    pitr = _props("DbCluster")["BackupRetentionPeriod"]
    assert f"older than the {pitr} days of point-in-time recovery" in runbook
    assert f"Aurora keeps {pitr} days of point-in-time recovery" in dr
    kept = _resolve("DatabaseBackupPlan.BackupPlan.BackupPlanRule.0.Lifecycle.DeleteAfterDays")
    assert f"AWS Backup keeps {kept} days of daily backups" in dr
    minutes = _template()["Resources"]["ReindexFunction"]["Properties"]["Timeout"] // 60
    assert f"`ReindexFunction` is limited to {minutes} minutes per run" in runbook
    rtc = _resolve("ContentBucket.ReplicationConfiguration.Rules.0.Destination.ReplicationTime")
    assert f"Replication Time Control: {rtc['Time']['Minutes']} minutes" in dr
