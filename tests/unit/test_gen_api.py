"""template.yaml's API paths are generated from the route table, and kept so.

``devtools/gen_api.py`` writes the block between the template's markers; these
tests regenerate it in memory and fail when the checked-in block is stale, and
check that generating touches nothing outside the block."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from chalicelib.api.routes import ROUTES
from devtools import gen_api
from tests.unit.test_template import ANY_METHOD, ROOT, _CfnLoader

TEMPLATE = ROOT / "template.yaml"


def _split(text: str) -> tuple[str, str, str]:
    """The text before the generated block, the block, and the text after it."""
    start = text.rfind("\n", 0, text.index(gen_api.BEGIN)) + 1
    end = text.index("\n", text.index(gen_api.END)) + 1
    return text[:start], text[start:end], text[end:]


def test_the_template_api_paths_are_generated_from_the_route_table() -> None:
    text = TEMPLATE.read_text()
    assert gen_api.with_paths(text) == text, (
        "template.yaml's API paths are stale: run `python -m devtools.gen_api`"
    )


def test_the_generated_block_declares_each_route_and_its_authorizer() -> None:
    before, block, _ = _split(TEMPLATE.read_text())
    indent = len(block) - len(block.lstrip(" "))
    assert before.endswith("\n") and indent == len(gen_api.INDENT)
    paths = yaml.load(textwrap.dedent(block), Loader=_CfnLoader)["paths"]
    declared = {
        (p, m.upper()) for p, ops in paths.items() for m in ops if m not in (ANY_METHOD, "options")
    }
    assert declared == {(r.path, r.method) for r in ROUTES}
    for route in ROUTES:
        assert ("security" in paths[route.path][route.method.lower()]) == (not route.public)
        # a browser's preflight carries no token: the app answers it
        assert "security" not in paths[route.path]["options"]


def test_generating_changes_the_block_and_nothing_else() -> None:
    text = TEMPLATE.read_text()
    fewer = gen_api.with_paths(text, [r for r in ROUTES if r.path != "/audit"])
    assert fewer != text
    before, block, after = _split(text)
    new_before, new_block, new_after = _split(fewer)
    assert (new_before, new_after) == (before, after)
    assert "/audit:" in block and "/audit:" not in new_block
    assert gen_api.with_paths(fewer) == text  # and back, byte for byte


def test_the_block_is_found_by_its_markers_whatever_it_holds() -> None:
    stale = f"a: 1\n        {gen_api.BEGIN}\n  anything: [\n        {gen_api.END} (old)\nb: 2"
    assert gen_api.with_paths(stale) == f"a: 1\n{gen_api.paths_block()}b: 2"
    for broken in ("a: 1\n", f"{gen_api.END}\n{gen_api.BEGIN}\n", f"{gen_api.BEGIN}\n" * 2):
        with pytest.raises(gen_api.MarkersMissing):
            gen_api.with_paths(broken)


def test_check_fails_on_a_stale_template_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    copy.write_text(text.replace("          /search:\n", "          /search2:\n", 1))
    assert gen_api.main(["--check", "--template", str(copy)]) == 1
    assert "run `python -m devtools.gen_api`" in capsys.readouterr().err
    assert gen_api.main(["--template", str(copy)]) == 0
    assert copy.read_text() == text
    assert gen_api.main(["--check", "--template", str(copy)]) == 0
