"""What ops see in X-Ray and CloudWatch: the subsegments and EMF metrics of a
GET hit, a GET miss, a write and a search sync batch, captured from a real run
(real PostgreSQL, Redis and the search stand-in; the X-Ray SDK with an emitter
that keeps what it would have sent to the daemon).  Tracing and metrics are on
only in the child process that runs the probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JWT_SECRET, REDIS_URL, create_database, drop_database, make_token

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

PROBE = r'''
import json, sys
from aws_xray_sdk.core import xray_recorder

class Keep:
    """An X-Ray emitter that keeps each finished segment instead of sending it."""
    def __init__(self):
        self.sent = []
    def send_entity(self, entity):
        self.sent.append(json.loads(entity.serialize()))
    def set_daemon_address(self, address):
        pass

keep = Keep()
xray_recorder.configure(emitter=keep, sampling=False, context_missing="LOG_ERROR")

import app
from chalicelib import bootstrap
from devtools.events import LambdaContext, api_gateway_event
from functions import sync_search

token = sys.argv[1]

def walk(entity, names, notes):
    for sub in entity.get("subsegments", []):
        names.append(sub["name"])
        notes.update(sub.get("annotations", {}))
        walk(sub, names, notes)

def traced(run):
    # as in Lambda: the runtime's trace header makes the facade segment, and the
    # SDK sends each finished top-level subsegment (the handler's) to the emitter
    before = len(keep.sent)
    result = run()
    names, notes = [], {}
    for entity in keep.sent[before:]:
        names.append(entity["name"])
        notes.update(entity.get("annotations", {}))
        walk(entity, names, notes)
    return result, names, notes

def call(method, path, body=None, **extra):
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json", **extra}
    raw = json.dumps(body).encode() if body is not None else None
    event = api_gateway_event(tuple(app.app.routes), method, path, headers=headers, body=raw)
    return app.handler(event, LambdaContext.new())

out = {}
created = call("POST", "/documents", {"title": "t"})
doc = json.loads(created["body"])
path = "/documents/" + doc["id"]
_, out["write"], out["write_notes"] = traced(
    lambda: call("PUT", path, {"title": "t2"}, **{"If-Match": doc["etag"]})
)
cache = bootstrap.container().cache
cache.client.delete(cache._doc_key(doc["org"], doc["id"]), cache._etag_key(doc["org"], doc["id"]))
miss, out["miss"], out["miss_notes"] = traced(lambda: call("GET", path))
hit, out["hit"], _ = traced(lambda: call("GET", path))
out["x_cache"] = [miss["headers"]["X-Cache"], hit["headers"]["X-Cache"]]
_, out["sync"], _ = traced(lambda: sync_search.sweep_handler({}, LambdaContext.new()))
print("RESULT " + json.dumps(out))
'''


@pytest.fixture
def probe_run(opensearch_url: str, redis_prefix: str) -> Any:
    database_url = create_database()
    org = f"tr{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "DOCS_REDIS_KEY_PREFIX": redis_prefix + "trace:",
        "DOCS_JWT_SECRET": JWT_SECRET,
        "OPENSEARCH_URL": opensearch_url,
        "DOCS_SEARCH_ALIAS": f"t{uuid.uuid4().hex[:8]}-docs",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_METRICS_DISABLED": "false",
        "POWERTOOLS_SERVICE_NAME": "docs",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        # Powertools traces only inside Lambda: look like it, with a sampled trace
        "AWS_LAMBDA_FUNCTION_NAME": "docs-probe",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_X_AMZN_TRACE_ID": "Root=1-6750a000-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, make_token(org=org)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        drop_database(database_url)
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    emf = [json.loads(x) for x in out.stdout.splitlines() if '"_aws"' in x]
    metrics = {
        m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    return json.loads(line[len("RESULT ") :]), metrics, org


def test_segments_show_every_dependency_call(probe_run: Any) -> None:
    seen, _, org = probe_run
    assert seen["x_cache"] == ["miss", "hit"]
    # a replace: one PostgreSQL transaction, the fence inside it, the write-back after
    assert seen["write"].count("postgres.transaction") == 1
    assert "redis.fence" in seen["write"] and "redis.publish" in seen["write"]
    assert seen["write"].index("postgres.transaction") < seen["write"].index("redis.publish")
    # a miss: the cache, then PostgreSQL, then the fill; a hit: the cache only
    # (postgres.maintenance: the at-most-once-a-second check of the cache repair queue)
    calls = [n for n in seen["miss"] if n.startswith(("redis.", "postgres.read"))]
    assert calls == ["redis.get", "postgres.read", "redis.fill"], seen["miss"]
    assert [n for n in seen["hit"] if n.startswith(("redis.", "postgres.read"))] == ["redis.get"]
    assert "postgres.transaction" not in seen["hit"]
    # the request is findable by org and document id
    assert seen["write_notes"]["org"] == org
    assert seen["miss_notes"]["org"] == org and seen["miss_notes"]["doc_id"]
    # a sync batch: maintenance queries and the OpenSearch bulk write
    assert "postgres.maintenance" in seen["sync"]
    assert any(n.endswith("OpenSearchIndex.write") for n in seen["sync"]), seen["sync"]


def test_metrics_are_flushed_for_requests_and_sync(probe_run: Any) -> None:
    _, metrics, _ = probe_run
    assert {"DocumentChanges", "CacheHits", "CacheMisses", "RequestLatency",
            "CacheBreakerOpen"} <= metrics  # fmt: skip
    assert (
        "SearchSyncLag" in metrics
        or "SearchSyncLagMs" in metrics
        or any("Lag" in m for m in metrics)
    ), metrics
