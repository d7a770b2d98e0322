"""Write the API Gateway paths of ``template.yaml`` from the route table.

``python -m devtools.gen_api`` rewrites the block between the template's
``BEGIN`` and ``END`` markers (inside the ``Api`` resource's
``DefinitionBody``) from ``chalicelib/api/routes.py``, and nothing else:
every other byte of the template stays as it is.  ``--check`` writes nothing
and exits 1 when the block is stale (tests/unit/test_gen_api.py fails then
too).  Run it after adding, removing or opening a route (docs/deploy.md).

Each path gets its routes' methods, plus ``x-amazon-apigateway-any-method``
so that a method the path does not serve reaches the app, which answers 405
problem+json with ``Allow``, instead of API Gateway's 403, and ``options``
without the authorizer: a browser's preflight carries no token, and the app
answers it from the CORS allowlist (chalicelib/api/cors.py).  Every operation
invokes the API function's ``live`` alias through a Lambda proxy integration;
all but the public routes require the Cognito authorizer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from chalicelib.api.route import Route
from chalicelib.api.routes import ROUTES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
BEGIN = "# BEGIN GENERATED API PATHS"
END = "# END GENERATED API PATHS"
INDENT = " " * 8  # the depth of DefinitionBody's keys
# the API's Lambda TOKEN authorizer (functions/authorizer.py), on every non-public operation
SCHEME = "tokenAuthorizer"
_URI = (
    '!Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31'
    '/functions/${ApiFunction.Alias}/invocations"'
)
_INTRO = (
    f"{BEGIN}: `python -m devtools.gen_api` writes them from",
    "# chalicelib/api/routes.py; edit the route table, not this block.",
    "paths:",
    "  # Each path also has ANY: a method the path does not serve reaches the",
    "  # app, which answers 405 problem+json with Allow (API.md), instead of",
    '  # API Gateway\'s 403 "Missing Authentication Token"; and OPTIONS without',
    "  # the authorizer: the app answers a browser's preflight (no token) from",
    "  # its CORS allowlist (DOCS_CORS_ORIGINS).",
)


class MarkersMissing(ValueError):
    """The template has not exactly one pair of markers, in order."""


def _operation(method: str, public: bool) -> list[str]:
    lines = [f"    {method}:"]
    if not public:
        lines.append(f"      security: [{{{SCHEME}: []}}]")
    return [
        *lines,
        "      x-amazon-apigateway-integration:",
        "        type: aws_proxy",
        "        httpMethod: POST",  # Lambda is invoked with POST, whatever the client's method
        f"        uri: {_URI}",
    ]


def paths_block(routes: Iterable[Route] = ROUTES) -> str:
    """The generated block, markers included, indented for ``DefinitionBody``."""
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)
    lines = list(_INTRO)
    for path, served in by_path.items():
        lines.append(f"  {path}:")
        for route in served:
            lines += _operation(route.method.lower(), route.public)
        lines += _operation("options", public=True)
        lines += _operation("x-amazon-apigateway-any-method", all(r.public for r in served))
    lines.append(END)
    return "".join(f"{INDENT}{line}\n" for line in lines)


def with_paths(template: str, routes: Iterable[Route] = ROUTES) -> str:
    """``template`` with its generated block replaced by one made from ``routes``.

    The block runs from the line holding ``BEGIN`` to the line holding ``END``,
    both included; the text before and after it is returned unchanged."""
    if template.count(BEGIN) != 1 or template.count(END) != 1:
        raise MarkersMissing(f"template.yaml needs one {BEGIN!r} line and one {END!r} line")
    begin_at, end_at = template.index(BEGIN), template.index(END)
    if end_at < begin_at:
        raise MarkersMissing(f"{END!r} comes before {BEGIN!r}")
    start = template.rfind("\n", 0, begin_at) + 1
    end = template.find("\n", end_at)
    end = len(template) if end == -1 else end + 1
    return template[:start] + paths_block(routes) + template[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.gen_api", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the block is stale"
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="default: template.yaml")
    args = parser.parse_args(argv)
    current = args.template.read_text()
    wanted = with_paths(current)
    if wanted == current:
        print(f"{args.template.name}: the API paths match the route table")
        return 0
    if args.check:
        print(
            f"{args.template.name}: the API paths are stale; run `python -m devtools.gen_api`",
            file=sys.stderr,
        )
        return 1
    args.template.write_text(wanted)
    print(f"{args.template.name}: API paths written from the route table ({len(ROUTES)} routes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
