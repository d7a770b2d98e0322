"""Every metric the code emits is registered, and every one that marks a failure
has an alarm that notifies someone (chalicelib/metric_names.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.metric_names import ALARMED, METRICS, alarmed
from tests.unit.test_template import _template, composed

ROOT = Path(__file__).resolve().parents[2]
EMITTERS = {"count", "milliseconds", "gauge"}
NAMESPACE = "DocsService"
ACTION = {"If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}


def _sources() -> Iterator[Path]:
    yield ROOT / "app.py"
    for folder in ("chalicelib", "functions"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name != "observability.py":  # defines the emitters themselves
                yield path


def _bound(trees: dict[Path, ast.Module], name: str) -> set[str]:
    """String literals given to a parameter or keyword called ``name`` anywhere (a
    name passed in, e.g. ``SqsNudge(failure_metric="RealtimeNudgeFailed")``)."""
    found: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == name:
                found |= _literals(node.value)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args.args[len(node.args.args) - len(node.args.defaults) :]
                for arg, default in zip(args, node.args.defaults, strict=True):
                    if arg.arg == name:
                        found |= _literals(default)
                for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True):
                    if arg.arg == name and default is not None:
                        found |= _literals(default)
    return found


def _literals(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _literals(node.body) | _literals(node.orelse)
    return set()


def _module_dict(tree: ast.Module, name: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(isinstance(t, ast.Name) and t.id == name for t in targets)
            if named and isinstance(node.value, ast.Dict):
                return {v for value in node.value.values for v in _literals(value)}
    return set()


def emitted() -> dict[str, set[str]]:
    """Every metric name the code can emit, with where; a call whose name cannot be
    read statically is reported as ``<unresolved>``."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _sources()}
    names: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute) and func.attr == "add_metric":
                called = "add_metric"
            if called not in EMITTERS and called != "add_metric":
                continue
            arg = node.args[0]
            found = _literals(arg)
            if not found and isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name):
                found = _module_dict(tree, arg.value.id)  # a module's outcome -> name table
            if not found and isinstance(arg, ast.Attribute | ast.Name):
                found = _bound(trees, arg.attr if isinstance(arg, ast.Attribute) else arg.id)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for name in found or {"<unresolved>"}:
                names.setdefault(name, set()).add(where)
    return names


def _watched(alarm: dict[str, Any]) -> set[str]:
    """The DocsService metrics an alarm reads: its metric, its metric math's metrics,
    and the metrics its Metrics Insights queries select."""
    seen: set[str] = set()
    if alarm.get("Namespace") == NAMESPACE:
        seen.add(alarm["MetricName"])
    for query in alarm.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric", {})
        if metric.get("Namespace") == NAMESPACE:
            seen.add(metric["MetricName"])
        expression = query.get("Expression")
        if isinstance(expression, str) and f"SCHEMA({NAMESPACE}" in expression.replace('"', ""):
            seen |= set(re.findall(r"\b(?:SUM|MAX|AVG|MIN|COUNT)\((\w+)\)", expression))
    return seen


def test_every_emitted_metric_is_registered() -> None:
    names = emitted()
    assert "<unresolved>" not in names, (
        f"a metric name the test cannot read: {names.get('<unresolved>')}; pass a literal, "
        "a conditional of literals, a module-level dict of literals, or a keyword literal"
    )
    unknown = {name: sorted(where) for name, where in names.items() if name not in METRICS}
    assert not unknown, f"add them to chalicelib/metric_names.py: {unknown}"


def test_the_scan_sees_the_metrics_of_every_kind_of_call_site() -> None:
    names = emitted()
    # a literal, a conditional, a module's table, a keyword argument and a default
    for name in ("ServerErrors", "RealtimeThrottled", "ContentReady", "RealtimeNudgeFailed"):
        assert name in names, name
    assert "SearchNudgeFailed" in names


def test_every_registered_metric_is_emitted_somewhere() -> None:
    stale = set(METRICS) - set(emitted())
    assert not stale, f"registered but never emitted: {sorted(stale)}"


@pytest.mark.parametrize("metric", alarmed())
def test_every_alarmed_metric_has_an_alarm_with_an_action(metric: str) -> None:
    template = _template()
    alarms = [
        (name, r["Properties"])
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and metric in _watched(r["Properties"])
    ]
    assert alarms, f"{metric} ({ALARMED}) has no alarm in template.yaml"
    windows = composed(template)  # a burn-rate window notifies through its composite
    for name, alarm in alarms:
        assert alarm.get("AlarmActions", windows.get(name)) == [ACTION], name
        assert "Condition" not in template["Resources"][name], name  # every deploy has it


def test_metrics_insights_alarms_sum_every_functions_service() -> None:
    """The functions publish under their own ``service`` dimension (docs,
    docs-search-sync …), so an alarm on a metric several of them emit queries the
    whole schema rather than one service."""
    for name, resource in _template()["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for query in resource["Properties"].get("Metrics", []):
            expression = query.get("Expression")
            if isinstance(expression, str) and expression.startswith("SELECT"):
                assert f"FROM SCHEMA({NAMESPACE}, service)" in expression, name
                assert query["Period"] >= 60 and query["ReturnData"] is True, name
