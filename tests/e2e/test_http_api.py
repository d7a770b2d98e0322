"""Black-box: the local server over HTTP, backed by real PostgreSQL and Redis."""

from __future__ import annotations

import threading
import time

import jwt
import pytest

from chalicelib.domain.keys import join_key
from tests.conftest import JWT_SECRET, make_token
from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: str) -> Client:
    return Client(server, make_token(org="e2e", sub="erin", roles=("writer",)))


def test_full_crud_over_http(client: Client) -> None:
    r = client.request(
        "POST", "/documents", {"title": "Quarterly plan", "body": {"q": 3}, "tags": ["plan"]}
    )
    assert r.status == 201
    doc = r.json()
    assert r.headers["location"] == f"/documents/{doc['id']}" and r.headers["etag"] == doc["etag"]
    r = client.request("GET", f"/documents/{doc['id']}", headers={"X-Request-Id": "trace-me-123"})
    assert r.status == 200 and r.json()["title"] == "Quarterly plan"
    assert r.headers["x-request-id"] == "trace-me-123"
    r = client.request(
        "POST",
        f"/documents/{doc['id']}/changes",
        [{"op": "add", "path": "/tags/-", "value": "q3"}],
        headers={"Content-Type": "application/json-patch+json", "If-Match": doc["etag"]},
    )
    assert r.status == 200 and r.json()["tags"] == ["plan", "q3"]
    r = client.request(
        "PUT",
        f"/documents/{doc['id']}",
        {"title": "Replaced"},
        headers={"If-Match": r.json()["etag"]},
    )
    assert r.status == 200 and r.json()["version"] == 3 and r.json()["body"] is None
    listed = client.request("GET", "/documents?limit=100").json()["items"]
    assert doc["id"] in [d["id"] for d in listed]
    assert client.request("DELETE", f"/documents/{doc['id']}").status == 204
    assert client.request("GET", f"/documents/{doc['id']}").status == 404
    assert doc["id"] not in [
        d["id"] for d in client.request("GET", "/documents?limit=100").json()["items"]
    ]
    versions = client.request("GET", f"/documents/{doc['id']}/versions")
    assert versions.status == 404  # a deleted document's history is not browsable until restored


def test_every_error_status_is_problem_json(server: str, client: Client) -> None:
    doc = client.request("POST", "/documents", {"title": "x"}).json()
    path = f"/documents/{doc['id']}"
    reader = Client(server, make_token(org="e2e", roles=("reader",)))
    cases = {
        400: client.request("POST", "/documents", raw=b"{oops"),
        401: Client(server).request("GET", path),
        403: reader.request("POST", "/documents", {"title": "x"}),
        404: client.request("GET", "/documents/does-not-exist"),
        405: client.request("DELETE", "/openapi.json"),
        409: client.request("PATCH", path, [{"op": "test", "path": "/title", "value": "y"}],
                            headers={"Content-Type": "application/json-patch+json", "If-Match": doc["etag"]}),
        412: client.request("PUT", path, {"title": "y"}, headers={"If-Match": '"old"'}),
        413: client.request("POST", "/documents", raw=b'{"title":"' + b"a" * (1024 * 1024 + 10) + b'"}'),
        415: client.request("PATCH", path, {"title": "y"}, headers={"Content-Type": "text/plain", "If-Match": doc["etag"]}),
        422: client.request("POST", "/documents", {"title": ["not", "a", "string"]}),
        428: client.request("PATCH", path, {"title": "y"}, headers={"Content-Type": "application/merge-patch+json"}),
    }  # fmt: skip
    for status, r in cases.items():
        assert r.status == status, (status, r)
        assert r.headers["content-type"] == "application/problem+json", status
        problem = r.json()
        assert problem["status"] == status and problem["title"] and problem["detail"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]
    assert client.request("GET", path).json()["version"] == 1, "no failed request changed anything"
    assert client.request("GET", "/no/such/route").status == 404
    trace = client.request("TRACE", "/search")
    assert trace.status == 405 and trace.headers["content-type"] == "application/problem+json"
    odd = client.request("QUERY", "/documents")  # a method token no route serves
    assert odd.status == 405 and odd.headers["content-type"] == "application/problem+json"
    assert odd.json()["status"] == 405
    nul = client.request("GET", "/documents?tag=a%00b")
    assert nul.status == 400 and nul.headers["content-type"] == "application/problem+json"


def test_concurrent_writers_with_same_if_match_exactly_one_wins(client: Client) -> None:
    doc = client.request("POST", "/documents", {"title": "race"}).json()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        r = client.request(
            "PATCH",
            f"/documents/{doc['id']}",
            {"title": f"writer-{i}"},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": doc["etag"]},
        )
        statuses.append(r.status)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [412] * 7
    final = client.request("GET", f"/documents/{doc['id']}").json()
    assert final["version"] == 2 and final["title"].startswith("writer-")


def test_cache_hit_after_miss_and_no_stale_read_after_write(client: Client) -> None:
    import redis

    from tests.conftest import REDIS_URL

    doc = client.request("POST", "/documents", {"title": "v1"}).json()
    # evict through Redis (our own prefix) to observe a miss first
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(match=f"*doc:{join_key('e2e', doc['id'])}"):
        r.delete(key)
    assert client.request("GET", f"/documents/{doc['id']}").headers["x-cache"] == "miss"
    assert client.request("GET", f"/documents/{doc['id']}").headers["x-cache"] == "hit"
    etag = doc["etag"]
    for i in range(2, 12):
        w = client.request(
            "PATCH", f"/documents/{doc['id']}", {"title": f"v{i}"},
            headers={"Content-Type": "application/merge-patch+json", "If-Match": etag},
        )  # fmt: skip
        assert w.status == 200
        etag = w.json()["etag"]
        # reads land on any of the 4 worker processes: none may be behind the write
        for _ in range(4):
            got = client.request("GET", f"/documents/{doc['id']}").json()
            assert got["version"] == i and got["title"] == f"v{i}"


def test_cross_org_is_404_and_lists_are_scoped(server: str, client: Client) -> None:
    doc = client.request("POST", "/documents", {"title": "secret plan"}).json()
    intruder = Client(server, make_token(org="rival", roles=("admin",)))
    assert intruder.request("GET", f"/documents/{doc['id']}").status == 404
    assert intruder.request("DELETE", f"/documents/{doc['id']}").status == 404
    assert intruder.request("GET", f"/documents/{doc['id']}/versions/1").status == 404
    assert doc["id"] not in [d["id"] for d in intruder.request("GET", "/documents").json()["items"]]


def test_missing_expired_and_tampered_tokens_are_401(server: str, client: Client) -> None:
    good = make_token(org="e2e")
    expired = make_token(org="e2e", exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    header, payload, sig = good.split(".")
    forged_claims = jwt.encode({**jwt.decode(good, JWT_SECRET, algorithms=["HS256"], audience="docs-api"),
                                "org": "rival"}, "not-the-secret", algorithm="HS256")  # fmt: skip
    for token in [None, expired, f"{header}.{payload}.{sig[:-3]}abc", forged_claims, "x.y.z"]:
        r = Client(server, token).request("GET", "/documents")
        assert r.status == 401, token
        assert r.headers["content-type"] == "application/problem+json"
    assert Client(server, good).request("GET", "/documents").status == 200


def test_health_and_openapi_need_no_token(server: str) -> None:
    anon = Client(server)
    health = anon.request("GET", "/health")
    checks = health.json()["checks"]
    assert health.status == 200
    assert checks["postgres"] == checks["redis"] == checks["s3"] == "ok", checks  # moto locally
    spec = anon.request("GET", "/openapi.json").json()
    assert "/documents/{doc_id}/changes" in spec["paths"]


def test_same_idempotency_key_ten_times_at_once_writes_once(client: Client) -> None:
    barrier = threading.Barrier(10)
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        r = client.request(
            "POST", "/documents", {"title": "exactly-once"}, headers={"Idempotency-Key": "burst-1"}
        )
        doc_id = r.json().get("id") if r.status == 201 else None
        with lock:
            results.append((r.status, doc_id))

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert set(statuses) <= {201, 409}, statuses
    assert len({i for s, i in results if s == 201}) == 1, "every success is the same document"
    listed = client.request("GET", "/documents?limit=100").json()["items"]
    assert [d["title"] for d in listed].count("exactly-once") == 1
    # once the first finished, a retry replays it
    again = client.request(
        "POST", "/documents", {"title": "exactly-once"}, headers={"Idempotency-Key": "burst-1"}
    )
    assert again.status == 201 and again.headers["idempotent-replayed"] == "true"
