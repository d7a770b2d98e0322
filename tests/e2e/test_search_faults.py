"""A consumer process killed (SIGKILL) after OpenSearch acknowledged its batch
but before it marked the rows: nothing is lost, the replay is harmless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chalicelib import bootstrap
from chalicelib.domain.model import Change, Document
from chalicelib.domain.search_index import search_document
from tests.conftest import (
    REDIS_URL,
    admin_connection,
    create_database,
    drop_database,
    drop_search_indexes,
)
from tests.polling import poll

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_consumer_killed_mid_batch_converges(settings, opensearch_url) -> None:
    db = create_database()
    alias = f"t{uuid.uuid4().hex[:8]}-docs"
    own = settings.model_copy(
        update={"database_url": db, "opensearch_url": opensearch_url, "search_alias": alias}
    )
    c = bootstrap.build(own)
    proc = None
    try:
        c.search_sync.reindex()  # the alias exists
        now = datetime.now(UTC)
        for i in range(20):
            with c.uow.transaction("kill-org") as tx:
                tx.documents.insert(Document("kill-org", f"d{i}", f"kill {i}", {"i": i}, [], {}, 1,
                                     "me", now, now), Change("create", "me"))  # fmt: skip
        env = {
            **os.environ,
            "DATABASE_URL": db,
            "REDIS_URL": REDIS_URL,
            "OPENSEARCH_URL": opensearch_url,
            "DOCS_SEARCH_ALIAS": alias,
            "DOCS_FAULT_SYNC_PAUSE_MS": "60000",  # parks after the bulk write, before marking
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.cli", "sync"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def indexed() -> int:
            c.search_index.refresh()
            return len(c.search_index.all_documents())

        # wait for the batch to reach OpenSearch
        assert poll(indexed, lambda n: n == 20, timeout_s=30) == 20, "the batch never arrived"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with admin_connection(c) as conn:
            pending = conn.execute(
                "SELECT count(*) AS n, max(attempts) AS a FROM outbox WHERE processed_at IS NULL"
            ).fetchone()
        assert pending["n"] == 20 and pending["a"] == 0  # its claim died with it

        report = c.search_sync.drain()  # the next consumer replays the batch
        assert report.rows == 20 and report.retried == 0 and report.dead_lettered == 0
        c.search_index.refresh()
        held = c.search_index.all_documents()
        expected = {}
        for row in c.outbox.documents_page(None, 100):
            doc = search_document(row, max_chars=own.search_body_max_chars)
            expected[doc.index_id] = (doc.version, doc.source)
        assert held == expected
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        c.close()
        drop_search_indexes(opensearch_url, alias)
        drop_database(db)
