"""The restore drill: a point-in-time restore into a fresh instance, measured.

On a private PostgreSQL that archives its WAL (``archive_command`` into a
local directory), through the local server:

1. a known history: bulk documents (``POST /documents:batch``), then a mixed
   load (creates, merge-patches with If-Match, deletes) during which a base
   backup is taken (``pg_basebackup``), and which goes on after it;
2. the load stops, a named restore point is created
   (``pg_create_restore_point``) and its WAL segment archived;
3. more writes after it: new documents, patches and deletes of documents
   written before it;
4. the disaster: the server and the primary are gone (data directory removed).

The restore (the RTO clock runs from here): copy the base backup into a fresh
instance, replay the archived WAL to the restore point (``restore_command``,
``recovery_target_name``), start the service on it with an empty cache (a new
key prefix) and an empty search index (a new alias), rebuild the index
(``devtools.cli reindex``), verify the audit chain (``devtools.cli audit
verify``), and check through the service: every write acknowledged before the
restore point is there at its version, none after it is, and the rebuilt
index finds them.  The figures (phases, data size, rates) go to the terminal
summary; docs/operations.md extrapolates them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import make_token
from tests.e2e.conftest import ROOT, Client, LocalServer, server_env
from tests.faults.load import Ack, MixedLoad
from tests.faults.servers import PrivatePostgres, PrivateRedis
from tests.polling import poll
from tests.summaries import summary_line

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

BULK_BATCHES = 20  # x 100 documents: most of the data the RTO is measured on
RESTORE_POINT = "drill"
MERGE_PATCH = "application/merge-patch+json"
SECTION = "restore drill: point-in-time restore into a fresh instance"


def _admin(pg: PrivatePostgres) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(pg.url, autocommit=True, row_factory=dict_row)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.cli", *args], check=False, cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _one(conn: psycopg.Connection[dict[str, Any]], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return next(iter(row.values()))


def _last_archived(conn: psycopg.Connection[dict[str, Any]]) -> str:
    return str(_one(conn, "SELECT last_archived_wal FROM pg_stat_archiver") or "")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class History:
    """What the service acknowledged, by org and document, and what came after the
    restore point (must not survive it)."""

    def __init__(self) -> None:
        self.before: dict[tuple[str, str], Ack] = {}
        self.created_after: list[tuple[str, str]] = []
        self.written_after: list[tuple[str, str]] = []  # patched or deleted after it
        self.words: dict[tuple[str, str], str] = {}  # a word only that document's title has

    def bulk(self, client: Client, org: str, batches: int) -> None:
        for b in range(batches):
            words = [f"w{uuid.uuid4().hex[:10]}" for _ in range(100)]
            body = {"documents": [{"title": f"bulk {b} {w}", "tags": ["dr"]} for w in words]}
            r = client.request("POST", "/documents:batch", body)
            assert r.status == 200, (r.status, r.body[:300])
            for word, result in zip(words, r.json()["results"], strict=True):
                assert result["status"] == 201, result
                self.before[(org, result["id"])] = Ack(1)
                self.words[(org, result["id"])] = word

    def keep(self, org: str, load: MixedLoad) -> None:
        for doc, ack in load.acks.items():
            self.before[(org, doc)] = ack


@pytest.fixture
def archive() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="docs-wal-", dir="/tmp"))
    path.chmod(0o777)  # the server's unprivileged user writes, the restore reads
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cache() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.kill()


def test_point_in_time_restore(
    archive: Path, cache: PrivateRedis, opensearch_url: str, request: pytest.FixtureRequest
) -> None:
    history = History()
    stoppers: list[Any] = []
    try:
        backup = _write_history(history, archive, cache, opensearch_url, stoppers)
        figures = _restore(history, archive, backup, cache, opensearch_url, stoppers)
    finally:
        for stop in reversed(stoppers):
            stop()
    for key, value in figures.items():
        summary_line(request, SECTION, f"{key:<36} {value}")


def _write_history(
    history: History, archive: Path, cache: PrivateRedis, search: str, stoppers: list[Any]
) -> PrivatePostgres:
    primary = PrivatePostgres()
    stoppers.append(primary.destroy)
    primary.configure(
        wal_level="replica",
        archive_mode="on",
        archive_command=f"test ! -f {archive}/%f && cp %p {archive}/%f",
    )
    primary.start()
    server = LocalServer(
        server_env(
            primary.url, cache.url, f"dr{uuid.uuid4().hex[:6]}:", OPENSEARCH_URL=search,
            DOCS_SEARCH_ALIAS=f"dr{uuid.uuid4().hex[:6]}-docs", DOCS_WORKERS="2",
        )
    )  # fmt: skip
    stoppers.append(server.stop)

    def client(org: str) -> Client:
        return Client(server.base, make_token(org=org, sub="dr", roles=("writer",)))

    history.bulk(client("dr-bulk"), "dr-bulk", BULK_BATCHES)
    load = MixedLoad(client("dr-load"), seed=23).start()
    try:
        assert poll(lambda: load.acked_writes >= 20, timeout_s=60), "the load is running"
        backup = PrivatePostgres(initdb=False)  # a base backup taken under load
        stoppers.append(backup.destroy)
        backup.base_backup(primary)
        start = load.acked_writes
        assert poll(lambda: load.acked_writes >= start + 20, timeout_s=60), "writes go on"
    finally:
        load.finish()
    assert set(load.statuses) <= {200, 201, 204, 404, 412}, dict(load.statuses)
    history.keep("dr-load", load)

    with _admin(primary) as conn:
        conn.execute("SELECT pg_create_restore_point(%s)", (RESTORE_POINT,))
        segment = str(_one(conn, "SELECT pg_walfile_name(pg_switch_wal())"))

    # after the restore point: new documents, and documents written before it changed
    after = client("dr-load")
    for i in range(10):
        r = after.request("POST", "/documents", {"title": f"after {i}"})
        assert r.status == 201
        history.created_after.append(("dr-load", r.json()["id"]))
    live = sorted(k for k, ack in history.before.items() if not ack.deleted)
    for n, (org, doc) in enumerate(live[:: max(1, len(live) // 20)]):
        c = client(org)
        etag = c.request("GET", f"/documents/{doc}").headers["etag"]
        if n % 4 == 0:
            r = c.request("DELETE", f"/documents/{doc}", headers={"If-Match": etag})
            assert r.status == 204
        else:
            headers = {"Content-Type": MERGE_PATCH, "If-Match": etag}
            r = c.request("PATCH", f"/documents/{doc}", {"title": "after"}, headers=headers)
            assert r.status == 200
        history.written_after.append((org, doc))

    with _admin(primary) as conn:  # the restore needs the segment holding the restore point
        assert poll(partial(_last_archived, conn), lambda last: last >= segment, timeout_s=60) >= (
            segment
        ), "the restore point's WAL segment is archived"
    server.stop()
    primary.destroy()  # the disaster: the instance and its data directory are gone
    return backup


def _restore(
    history: History,
    archive: Path,
    backup: PrivatePostgres,
    cache: PrivateRedis,
    search: str,
    stoppers: list[Any],
) -> dict[str, Any]:
    phases: dict[str, float] = {}
    started = clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = round(now - clock, 2)
        clock = now

    restored = PrivatePostgres(initdb=False)
    stoppers.append(restored.destroy)
    subprocess.run(["cp", "-a", f"{backup.data}/.", str(restored.data)], check=True)
    restored.configure(
        archive_mode="off",
        restore_command=f"cp {archive}/%f %p",
        recovery_target_name=RESTORE_POINT,
        recovery_target_action="promote",
    )
    (restored.data / "recovery.signal").touch()
    if restored.user:
        shutil.chown(restored.data / "recovery.signal", restored.user, restored.user)
    phase("copy base backup")
    restored.start()
    with _admin(restored) as conn:
        in_recovery = partial(_one, conn, "SELECT pg_is_in_recovery()")
        assert not poll(in_recovery, lambda r: not r, timeout_s=120), (
            "recovery reached the restore point and promoted"
        )
    phase("WAL replay to the restore point")

    alias = f"dr{uuid.uuid4().hex[:6]}-docs"  # an empty index; a new cache namespace
    server = LocalServer(
        server_env(
            restored.url, cache.url, f"dr{uuid.uuid4().hex[:6]}:", OPENSEARCH_URL=search,
            DOCS_SEARCH_ALIAS=alias, DOCS_WORKERS="2",
        )
    )  # fmt: skip
    stoppers.append(server.stop)
    phase("service start")
    # the server's search sync may be backfilling the empty index it found at start:
    # the CLI is then refused ("already running; retry when it is done"), as it says
    reindex = poll(
        lambda: _cli(server.env, "reindex", "--drop-old-now"),
        lambda done: "already running" not in done.stderr,
        timeout_s=300,
        interval_s=1.0,
    )
    assert reindex.returncode == 0, reindex.stderr[-2000:]
    phase("search reindex")
    audit = _cli(server.env, "audit", "verify")
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
    chains = [json.loads(line) for line in audit.stdout.splitlines() if line.startswith("{")]
    assert {c["org"] for c in chains} >= {"dr-bulk", "dr-load"}, chains
    phase("audit verify")
    rto = round(time.monotonic() - started, 2)

    checked = _check(history, server, alias, search)
    with _admin(restored) as conn:
        size = conn.execute(
            "SELECT pg_database_size('postgres') AS db, "
            "(SELECT count(*) FROM documents) AS docs, "
            "(SELECT count(*) FROM document_versions) AS versions, "
            "(SELECT count(*) FROM audit_log) AS audit"
        ).fetchone()
    assert size is not None
    report = json.loads(reindex.stdout.strip().splitlines()[-1])
    return {
        "RTO s (backup copy -> reopened)": rto,
        **{f"  {k} s": v for k, v in phases.items()},
        "documents / versions / audit rows": f"{size['docs']} / {size['versions']} / {size['audit']}",
        "database MB": round(size["db"] / 1e6, 1),
        "base backup MB": round(_du(backup.data) / 1e6, 1),
        "WAL archived MB": round(_du(archive) / 1e6, 1),
        "reindex docs/s (its own clock)": round(
            report["backfilled"] / max(report["seconds"], 0.01)
        ),
        "audit verify rows/s": round(size["audit"] / max(phases["audit verify"], 0.01)),
        **checked,
    }


def _check(history: History, server: LocalServer, alias: str, search: str) -> dict[str, int]:
    """Through the restored service: before the restore point, every acknowledged
    write at its version; after it, nothing; the rebuilt index finds them."""
    clients = {
        org: Client(server.base, make_token(org=org, sub="dr", roles=("reader",)))
        for org in ("dr-bulk", "dr-load")
    }
    wrong = {}
    for (org, doc), ack in history.before.items():
        r = clients[org].request("GET", f"/documents/{doc}")
        got = (r.status, r.json().get("version") if r.status == 200 else None)
        if got != ((404, None) if ack.deleted else (200, ack.version)):
            wrong[(org, doc)] = (got, ack)
    assert wrong == {}, "every write acknowledged before the restore point, at its version"
    resurrected = [
        key
        for key in history.created_after
        if clients[key[0]].request("GET", f"/documents/{key[1]}").status != 404
    ]
    assert resurrected == [], "no document created after the restore point"
    assert all(key in history.before for key in history.written_after)

    from opensearchpy import OpenSearch

    index = OpenSearch(hosts=[search], timeout=10)
    index.indices.refresh(index=alias)
    live = sum(1 for ack in history.before.values() if not ack.deleted)
    assert index.count(index=alias)["count"] == live, "the rebuilt index holds every live document"
    sample = list(history.words.items())[:: max(1, len(history.words) // 25)]
    missed = []
    for (org, doc), word in sample:
        r = clients[org].request("POST", "/search", {"q": word})
        assert r.status == 200, r.body[:300]
        if [h["id"] for h in r.json()["hits"]] != [doc]:
            missed.append(doc)
    assert missed == [], "a search for a document's own word finds it"
    return {"acknowledged before, checked": len(history.before), "searched": len(sample)}
