"""Every feature flag is one flag everywhere: the registry (chalicelib/domain/flags.py),
what the code asks, docs/feature-flags.md (with owner and removal date), the local
file config/feature-flags.json and the template's initial AppConfig document."""

from __future__ import annotations

import ast
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import chalicelib.domain.flags as registry
from chalicelib.adapters.feature_flags import DEFAULT_FILE
from chalicelib.domain.flags import FLAGS
from tests.unit.test_template import _env, _template

ROOT = Path(__file__).resolve().parents[2]
# declared for features being built; each is asked by the code that lands it
PENDING = {"webhooks", "share_notifications"}


def _asked_in_code() -> dict[str, str]:
    """flag -> where: the first argument of ``X.enabled(...)`` and the second of
    ``require(flags, ...)``, as a string or a constant of domain/flags.py."""
    places = [ROOT / "app.py"]
    for folder in ("chalicelib", "functions", "devtools"):
        places += sorted((ROOT / folder).rglob("*.py"))
    # the registry's require() and the adapter pass a caller's name on
    passing = {ROOT / "chalicelib/domain/flags.py", ROOT / "chalicelib/adapters/feature_flags.py"}
    asked: dict[str, str] = {}
    for place in (p for p in places if p not in passing):
        for node in ast.walk(ast.parse(place.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "enabled" and node.args:
                arg = node.args[0]
            elif isinstance(func, ast.Name) and func.id == "require" and len(node.args) > 1:
                arg = node.args[1]
            else:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.Name) and isinstance(getattr(registry, arg.id, None), str):
                name = getattr(registry, arg.id)
            else:
                name = f"<not a literal: {ast.unparse(arg)}>"
            asked.setdefault(name, f"{place.relative_to(ROOT)}:{node.lineno}")
    return asked


def _documented() -> dict[str, dict[str, str]]:
    text = (ROOT / "docs" / "feature-flags.md").read_text()
    section = text.split("## The flags", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z0-9_]+)` \| (on|off) \| ([^|]+) \| (\d{4}-\d\d-\d\d) \|", line)
        if match:
            rows[match.group(1)] = {
                "default": match.group(2),
                "owner": match.group(3).strip(),
                "remove_by": match.group(4),
            }
    return rows


def test_every_flag_the_code_asks_is_registered() -> None:
    asked = _asked_in_code()
    assert "realtime" in asked  # the scan finds what is there
    unknown = {name: where for name, where in asked.items() if name not in FLAGS}
    assert not unknown, f"flags asked in code but not in domain/flags.py: {unknown}"


def test_every_registered_flag_is_asked_by_the_code_or_pending() -> None:
    unasked = set(FLAGS) - set(_asked_in_code())
    assert unasked <= PENDING, f"flags nothing asks (remove them): {sorted(unasked - PENDING)}"


def test_the_docs_list_exactly_the_registered_flags_with_owner_and_date() -> None:
    documented = _documented()
    assert set(documented) == set(FLAGS), "docs/feature-flags.md and domain/flags.py differ"
    for name, flag in FLAGS.items():
        row = documented[name]
        assert row["default"] == ("on" if flag.default else "off"), name
        assert row["owner"] == flag.owner, name
        assert row["remove_by"] == flag.remove_by.isoformat(), name
        assert flag.remove_by > date(2026, 1, 1) and flag.owner, name


def test_the_local_file_has_every_flag_and_turns_it_on() -> None:
    local = json.loads(DEFAULT_FILE.read_text())
    assert set(local) == set(FLAGS)
    assert all(doc["default"] is True for doc in local.values())


def _resource(kind: str) -> dict[str, Any]:
    (props,) = [r["Properties"] for r in _template()["Resources"].values() if r["Type"] == kind]
    return dict(props)


def test_the_templates_initial_document_is_every_flag_at_its_default() -> None:
    import jsonschema

    content = json.loads(_resource("AWS::AppConfig::HostedConfigurationVersion")["Content"])
    assert content == {name: {"default": flag.default} for name, flag in FLAGS.items()}
    (validator,) = _resource("AWS::AppConfig::ConfigurationProfile")["Validators"]
    schema = json.loads(validator["Content"])
    jsonschema.validate(content, schema)
    jsonschema.validate(json.loads(DEFAULT_FILE.read_text()), schema)
    try:
        jsonschema.validate({"realtime": {"default": "yes"}}, schema)
        raise AssertionError("the profile's validator accepts a non-boolean default")
    except jsonschema.ValidationError:
        pass


def test_the_template_deploys_its_profile_and_every_function_reads_it() -> None:
    template = _template()
    profile = _resource("AWS::AppConfig::ConfigurationProfile")
    assert profile["Type"] == "AWS.Freeform" and profile["LocationUri"] == "hosted"
    deployment = _resource("AWS::AppConfig::Deployment")
    assert deployment["ConfigurationVersion"] == {"Ref": "FeatureFlagsInitialVersion"}
    assert deployment["ConfigurationProfileId"] == {"Ref": "FeatureFlagsProfile"}
    assert deployment["EnvironmentId"] == {"Ref": "FeatureFlagsEnvironment"}
    env = _env(template, "ApiFunction")
    assert env["DOCS_FEATURE_FLAGS_STORE"] == "appconfig"
    source = env["DOCS_FEATURE_FLAGS_SOURCE"]["Sub"]
    assert source.split("/") == [
        "${FeatureFlagsApplication}", "${FeatureFlagsEnvironment}", "${FeatureFlagsProfile}"
    ]  # fmt: skip
    for name in ("ApiFunction", "RealtimeFunction"):
        policies = template["Resources"][name]["Properties"]["Policies"]
        assert {"Ref": "FeatureFlagsReadPolicy"} in policies, name
