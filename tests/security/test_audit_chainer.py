"""The audit chain off the write path (migration 0016, docs/adr/0011): a write only
inserts its pending row, never waiting for another write of its org; the chainer
links committed rows gaplessly, once, whoever else runs it at the same time; no
one but the chainer places a row in the chain, and a row forged into the next
position stops the chainer and fails verify.

Real PostgreSQL, a database of its own (the tests rewrite rows on purpose).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from chalicelib.config import Settings
from tests.conftest import admin_sql

pytestmark = pytest.mark.integration

INSERT = (
    "BEGIN; SELECT set_config('role', 'docs_app', true), set_config('app.org', %s, true); "
    "INSERT INTO audit_log (org, actor, action, doc_id, version) "
    "VALUES (%s, %s, 'change', 'd1', 1); COMMIT"
)


@pytest.fixture(scope="module")
def services(settings: Settings, db_url: str) -> Iterator[Any]:
    from chalicelib import bootstrap

    built = bootstrap.build(settings.model_copy(update={"database_url": db_url}))
    yield built
    built.close()


def new_org() -> str:
    return f"chn-{uuid.uuid4().hex[:8]}"


def tenant(conn: psycopg.Connection[Any], org: str) -> None:
    conn.execute("SELECT set_config('role', 'docs_app', true), set_config('app.org', %s, true)",
                 (org,))  # fmt: skip


def insert(url: str, org: str, n: int, actor: str = "alice") -> None:
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        cur = psycopg.ClientCursor(conn)
        for _ in range(n):
            cur.execute(INSERT, (org, org, actor))


def positions(db_url: str, org: str) -> list[int | None]:
    rows = admin_sql(db_url, "SELECT chain_seq FROM audit_log WHERE org = %s ORDER BY id", org)
    return [r["chain_seq"] for r in rows]


# ------------------------------------------------------------------ the write path
def test_a_write_does_not_wait_for_another_write_of_its_org(services: Any, db_url: str) -> None:
    """The old trigger locked the org's chain head until commit: a second writer of
    the org waited for the first.  Now it commits at once, and the first one's row,
    committed later, is chained after it (chain order is commit order)."""
    org = new_org()
    url = services.settings.runtime_database_url
    insert(url, org, 1)
    services.audit.chain(org, wait=True)  # the org has a head
    with psycopg.connect(url) as first, psycopg.connect(url, autocommit=True) as second:
        tenant(first, org)
        first.execute("INSERT INTO audit_log (org, actor, action) VALUES (%s, 'alice', 'slow')",
                      (org,))  # fmt: skip
        # open, uncommitted, holding whatever a write holds; the other writer must not wait
        with second.transaction():
            tenant(second, org)
            second.execute("SET LOCAL lock_timeout = '5s'")
            second.execute("INSERT INTO audit_log (org, actor, action) VALUES (%s, 'bob', 'fast')",
                           (org,))  # fmt: skip
        assert services.audit.chain(org) == 1  # 'fast'; 'slow' is not committed yet
        first.commit()
    assert services.audit.chain(org) == 1
    rows = admin_sql(db_url, "SELECT action, chain_seq FROM audit_log WHERE org = %s "
                             "ORDER BY chain_seq", org)  # fmt: skip
    assert [(r["action"], r["chain_seq"]) for r in rows] == [
        ("change", 1), ("fast", 2), ("slow", 3)
    ]  # fmt: skip
    assert services.audit.verify_org(org).ok


def test_concurrent_writers_of_one_org_are_all_chained_gaplessly(
    services: Any, db_url: str
) -> None:
    """Eight writers of one org, a chainer running beside them (as the worker does):
    every committed row ends up in the chain, positions 1..N without a gap or a
    repeat, and the chain verifies."""
    org = new_org()
    url = services.settings.runtime_database_url
    stop = threading.Event()
    errors: list[BaseException] = []

    def chainer() -> None:
        try:
            while not stop.is_set():
                services.audit.chain()
        except BaseException as exc:
            errors.append(exc)

    background = threading.Thread(target=chainer)
    background.start()
    writers = [threading.Thread(target=insert, args=(url, org, 40, f"u{i}")) for i in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    background.join()
    assert not errors, errors
    report = services.audit.verify_org(org)  # chains what is left first
    assert report.ok and report.rows == 320 and report.last_seq == 320, report
    assert sorted(positions(db_url, org)) == list(range(1, 321))  # type: ignore[type-var]


def test_two_chainers_at_once_link_each_row_once(services: Any, db_url: str) -> None:
    org = new_org()
    insert(services.settings.runtime_database_url, org, 300)
    assert set(positions(db_url, org)) == {None}, "a write leaves its row pending"
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def chain(wait: bool) -> None:
        barrier.wait()
        counts.append(services.audit.chain(org, wait=wait))

    threads = [threading.Thread(target=chain, args=(w,)) for w in (True, False, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 300, counts  # each row linked by exactly one of them
    assert services.audit.chain(org, wait=True) == 0  # nothing left: idempotent
    assert sorted(positions(db_url, org)) == list(range(1, 301))  # type: ignore[type-var]
    report = services.audit.verify_org(org)
    assert report.ok and report.rows == 300, report


# ------------------------------------------------------------------ only the chainer
def test_the_runtime_login_cannot_place_or_move_a_row_in_the_chain(
    services: Any, db_url: str
) -> None:
    org = new_org()
    url = services.settings.runtime_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            tenant(conn, org)
            # a writer that sends a position and a hash: the trigger drops them
            conn.execute(
                "INSERT INTO audit_log (org, actor, action, chain_seq, hash) "
                "VALUES (%s, 'mallory', 'forged', 1, sha256('x'))",
                (org,),
            )
        services.audit.chain(org, wait=True)
        insert(url, org, 1)  # a pending row
        for statement in (
            "UPDATE audit_log SET hash = sha256('y') WHERE org = %(org)s",
            "UPDATE audit_log SET chain_seq = 7 WHERE org = %(org)s AND chain_seq IS NULL",
            "UPDATE audit_log SET hash = sha256('y'), chain_seq = 9 "
            "WHERE org = %(org)s AND chain_seq IS NULL",
        ):
            with conn.transaction(force_rollback=True):
                tenant(conn, org)
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(statement, {"org": org})
    rows = admin_sql(db_url, "SELECT action, chain_seq FROM audit_log WHERE org = %s "
                             "ORDER BY id", org)  # fmt: skip
    assert [(r["action"], r["chain_seq"]) for r in rows] == [("forged", 1), ("change", None)]
    assert services.audit.verify_org(org).ok


def test_the_chainer_role_sets_the_chain_of_a_pending_row_once_and_nothing_else(
    services: Any, db_url: str
) -> None:
    """Even taken directly (the owner is a member of it), the chainer's role can
    only do what the chainer does: fill chain_seq and hash of a pending row."""
    org = new_org()
    insert(services.settings.runtime_database_url, org, 2)
    services.audit.chain(org, wait=True)
    insert(services.settings.runtime_database_url, org, 1)
    with psycopg.connect(db_url, autocommit=True) as admin:
        guard, privilege = psycopg.errors.RaiseException, psycopg.errors.InsufficientPrivilege
        for statement, refused_by in (
            # a chained row's hash or position: the trigger (it may update those columns)
            ("UPDATE audit_log SET hash = sha256('y') WHERE org = %(org)s AND chain_seq = 1",
             guard),
            ("UPDATE audit_log SET chain_seq = 5 WHERE org = %(org)s AND chain_seq = 2", guard),
            # half a chain on a pending row: the trigger
            ("UPDATE audit_log SET chain_seq = 3 WHERE org = %(org)s AND chain_seq IS NULL",
             guard),
            # any other column, a delete: no privilege at all
            ("UPDATE audit_log SET chain_seq = 3, hash = sha256('y'), action = 'other' "
             "WHERE org = %(org)s AND chain_seq IS NULL", privilege),
            ("DELETE FROM audit_log WHERE org = %(org)s AND chain_seq IS NULL", privilege),
        ):  # fmt: skip
            with admin.transaction(force_rollback=True):
                admin.execute("SET LOCAL ROLE docs_audit_chainer")
                with pytest.raises(refused_by), admin.transaction():
                    admin.execute(statement, {"org": org})
    assert services.audit.verify_org(org).ok


def test_a_row_forged_into_the_next_position_stops_the_chainer_and_fails_verify(
    services: Any, db_url: str
) -> None:
    org = new_org()
    url = services.settings.runtime_database_url
    insert(url, org, 3)
    services.audit.chain(org, wait=True)
    admin_sql(
        db_url,
        "BEGIN; SET LOCAL session_replication_role = replica; "  # no trigger fires
        "INSERT INTO audit_log (org, actor, action, chain_seq, hash) "
        "SELECT org, actor, 'forged', chain_seq + 1, sha256(hash) FROM audit_log "
        "WHERE org = %s AND chain_seq = 3; COMMIT",
        org,
    )
    insert(url, org, 2)  # pending rows the chainer can no longer place
    assert services.audit.trail.chain_pending(org, limit=100, wait=True) == -1
    assert services.audit.trail.chain_all(100)[org] == -1
    report = services.audit.verify_org(org)
    assert not report.ok and report.broken_at == 4, report
    assert positions(db_url, org).count(None) == 2  # nothing of the failed pass stayed


def test_the_backlog_counts_pending_rows_until_they_are_chained(services: Any) -> None:
    org = new_org()
    services.audit.chain()
    before = services.audit.trail.backlog().pending  # (the forged org above stays pending)
    insert(services.settings.runtime_database_url, org, 3)
    backlog = services.audit.trail.backlog()
    assert backlog.pending == before + 3 and backlog.lag_s >= 0
    assert services.audit.chain(org) == 3
    lag = services.audit.chain_lag()
    assert lag["audit_pending"] == before, lag
