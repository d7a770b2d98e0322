"""The docs name what the code has, and the code has what the docs name: every route
(docs/api.md), every setting (README and docs/), every Lambda handler
(docs/architecture.md), each way round."""

from __future__ import annotations

import re
from pathlib import Path

from chalicelib.config import Settings
from tests.unit.test_template import _template

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_ANY = "|".join(METHODS)
# "GET /documents/{id}", "GET, HEAD /documents/{id}/content"
_ROUTE = re.compile(rf"\b({_ANY})((?:, (?:{_ANY}))*) (/[^\s|`),;]*)")
_NAME = re.compile(r"(?<![A-Za-z0-9_])DOCS_[A-Z0-9_]*[A-Z0-9](_\*)?")


def _docs() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def _shape(path: str) -> str:
    """A route without its parameters' names: /documents/{doc_id} == /documents/{id}."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", maxsplit=1)[0].rstrip("."))


def _app_routes() -> set[tuple[str, str]]:
    import app

    return {
        (method, _shape(path))
        for path, methods in app.app.routes.items()
        for method in methods
        if method != "OPTIONS"
    }


def _doc_routes() -> set[tuple[str, str]]:
    found = set()
    for match in _ROUTE.finditer((ROOT / "docs" / "api.md").read_text()):
        methods = [match.group(1), *filter(None, match.group(2).split(", "))]
        found |= {(method, _shape(match.group(3))) for method in methods}
    return found


def test_every_route_is_in_the_api_doc() -> None:
    missing = sorted(_app_routes() - _doc_routes())
    assert not missing, f"routes docs/api.md does not name: {missing}"


def test_every_route_the_api_doc_names_exists() -> None:
    invented = sorted(_doc_routes() - _app_routes())
    assert not invented, f"docs/api.md names routes the app does not have: {invented}"


def _settings() -> dict[str, set[str]]:
    """Each setting's field name and the environment names that set it."""
    names: dict[str, set[str]] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names[field] = {c for c in choices if isinstance(c, str)}
        else:
            names[field] = {f"DOCS_{field.upper()}"}
    return names


def _code_names() -> set[str]:
    """DOCS_* variables the local stack, the scripts and the handlers read themselves."""
    places = [ROOT / "app.py", *(ROOT / "scripts").glob("*.sh")]
    for folder in ("chalicelib", "functions", "devtools", "scripts"):
        places += (ROOT / folder).rglob("*.py")
    found: set[str] = set()
    for place in places:
        found |= {m.group(0) for m in _NAME.finditer(place.read_text()) if not m.group(1)}
    return found


def test_every_setting_is_documented() -> None:
    docs = _docs()
    named = {m.group(0) for m in _NAME.finditer(docs)}
    named |= {  # the conventional names without the prefix: DATABASE_URL, AWS_REGION...
        name
        for env in _settings().values()
        for name in env
        if re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", docs)
    }
    missing = sorted(field for field, env in _settings().items() if not env & named) + sorted(
        name for name in _code_names() - set().union(*_settings().values()) if name not in named
    )
    assert not missing, f"settings no page of docs/ (or the README) names: {missing}"


def test_every_setting_the_docs_name_exists() -> None:
    known = set().union(*_settings().values()) | _code_names()
    unknown = set()
    for match in _NAME.finditer(_docs()):
        name = match.group(0)
        if match.group(1):  # DOCS_REALTIME_*: a family, which must have members
            prefix = name[: -len("*")]
            if not any(k.startswith(prefix) for k in known):
                unknown.add(name)
        elif name not in known:
            unknown.add(name)
    assert not unknown, f"the docs name settings the code does not read: {sorted(unknown)}"


def _handler_modules() -> set[str]:
    modules = set()
    for resource in _template()["Resources"].values():
        handler = resource.get("Properties", {}).get("Handler")
        code = resource.get("Properties", {}).get("InlineCode")
        if resource["Type"] == "AWS::Serverless::Function" and handler and not code:
            modules.add(handler.rpartition(".")[0])
    return modules


def test_every_handler_is_in_the_architecture_doc() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for module in sorted(_handler_modules()):
        package, _, name = module.rpartition(".")
        if f"{module.replace('.', '/')}.py" not in text and f"`{name}.py`" not in text:
            missing.append(module)
    assert not missing, f"handlers docs/architecture.md does not name: {missing}"


def test_every_handler_file_the_docs_name_exists() -> None:
    named = set()
    for page in (ROOT / "docs").glob("*.md"):
        named |= set(re.findall(r"\bfunctions/([a-z_]+)\.py\b", page.read_text()))
    row = next(
        line
        for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
        if line.startswith("| `functions/`")
    )
    named |= set(re.findall(r"`([a-z_]+)\.py`", row))
    gone = sorted(n for n in named if not (ROOT / "functions" / f"{n}.py").exists())
    assert not gone, f"the docs name handler files that do not exist: {gone}"
