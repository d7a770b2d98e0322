"""schemathesis against the running local server's ``/openapi.json``: every phase
(examples, coverage, fuzzing, stateful over the spec's declared links: see
``schemathesis.toml`` beside this file), 0 failures.

The spec is the contract (docs/api.md): a response it does not list, a body
that does not match its schema, a 5xx, an operation that works without the
token it requires, a deleted document that can still be read — each is a
failure.  Four checks are left out, because what they assume does not hold
here (CONTRIBUTING.md, "Fuzzing and property tests", says so too):

- ``positive_data_acceptance``: a schema-valid request may rightly fail on
  *state*: a stale If-Match (412), a sealed page token or feed cursor the
  client made up (400), text PostgreSQL cannot store (NUL, lone surrogates:
  400), a merge patch adding an unknown field (422);
- ``negative_data_rejection``: the batch reports an invalid item in its own
  result (207) instead of failing the request, and preconditions are evaluated
  before the body (a stale If-Match with a bad body is a 412);
- ``missing_required_header``: a write without If-Match is a 428 (RFC 6585,
  Precondition Required), which the check does not accept; a missing token is
  still checked (``ignored_auth``: 401);
- ``ensure_resource_availability``: schemathesis also *infers* links from
  POST /documents to every ``{doc_id}`` operation, and a new document has no
  content yet (GET /documents/{id}/content is a 404 until an upload).

Bounded for CI by ``DOCS_FUZZ_EXAMPLES`` (examples per operation in the fuzzing
phase, default 5; the coverage phase, most of the run, is not bounded by it) and
reproducible by ``DOCS_FUZZ_SEED``; run it longer locally with e.g.
``DOCS_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest tests/fuzz -s``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL, create_database, delete_prefix, drop_database, make_token
from tests.e2e.conftest import ROOT, LocalServer, server_env

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(900)]
EXCLUDED_CHECKS = (
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "ensure_resource_availability",
)
EXAMPLES = int(os.environ.get("DOCS_FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("DOCS_FUZZ_SEED", "15"))


@pytest.fixture(scope="module")
def fuzz_server(opensearch_url: str) -> Iterator[str]:
    """A local server of its own (own database, key prefix and index alias):
    what the fuzzer creates never meets another test's data."""
    database = create_database()
    alias = f"fz{uuid.uuid4().hex[:6]}-docs"
    prefix = f"fz:{uuid.uuid4().hex[:8]}:"
    server = LocalServer(
        server_env(
            database, REDIS_URL, prefix,
            OPENSEARCH_URL=opensearch_url, DOCS_SEARCH_ALIAS=alias, DOCS_WORKERS="2",
        )
    )  # fmt: skip
    try:
        yield server.base
    finally:
        server.stop()
        drop_database(database)
        # (list generations and rate-limit buckets have no TTL: they would stay)
        delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)


def test_the_api_matches_its_openapi_document(fuzz_server: str, tmp_path: Path) -> None:
    token = make_token(org="fuzz", sub="fuzzer", roles=("writer", "admin"),
                       exp=int(time.time()) + 3600)  # fmt: skip
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", f"{fuzz_server}/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
        "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--request-timeout", "30", "--max-response-time", "30",  # long-polls last <= 20 s
        "--header", f"Authorization: Bearer {token}",
        "--suppress-health-check", "all", "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    # one worker: with two threads, CPython 3.11 can fail inside the fuzzer's own source
    # parsing ("SystemError: AST constructor recursion depth mismatch"), not in the API
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=840)
    output = done.stdout + done.stderr
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / "schemathesis-last.txt").write_text(output)  # the whole report
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-4000:]
    print(summary)  # with -s: what ran, per phase
    assert done.returncode == 0, output[-20000:]
