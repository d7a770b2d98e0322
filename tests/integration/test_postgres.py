"""The PostgreSQL adapter and migrations against the machine's PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest

from chalicelib.adapters.postgres import MIGRATIONS_DIR, PostgresUnitOfWork, migrate
from chalicelib.api.problems import problem_of
from chalicelib.config import Settings
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.model import Change, Document
from tests.conftest import ADMIN_DATABASE_URL, database_url_for, drop_database

pytestmark = pytest.mark.integration
CHANGE = Change("create", "tester", None)


def _doc(org: str, doc_id: str, version: int = 1) -> Document:
    now = datetime.now(UTC)
    return Document(org, doc_id, "t", {"b": 1}, ["x"], {}, version, "alice", now, now)


def test_migrations_are_idempotent_and_safe_concurrently() -> None:
    name = "docs_t_mig_" + datetime.now().strftime("%H%M%S%f")
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url_for(name)
    try:
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(migrate(url))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        every = tuple(sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql")))
        assert every[0] == "0001_documents"
        # each file is applied exactly once, whichever process got to it first
        # (the lock is per file, so the work may be split between processes)
        assert len(results) == 4
        assert sorted(name for applied in results for name in applied) == list(every)
        assert migrate(url) == []
    finally:
        drop_database(url)


def test_row_level_security_is_a_backstop(settings: Settings) -> None:
    uow = PostgresUnitOfWork(settings)
    try:
        with uow.transaction("org-a") as tx:
            assert tx.documents.insert(_doc("org-a", "rls-1"), CHANGE)
        with uow.transaction("org-b") as tx:
            assert tx.documents.insert(_doc("org-b", "rls-1"), CHANGE)
        # a query that forgets its org filter still sees only the tenant's rows
        with uow.transaction("org-a") as tx:
            rows = tx.conn.execute("SELECT org FROM documents WHERE id = 'rls-1'").fetchall()
            assert rows == [{"org": "org-a"}]
        # and a write into another tenant is refused (raised at commit: pipeline mode)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), uow.transaction("org-a") as tx:
            tx.conn.execute(
                "INSERT INTO documents (org, id, title, version, owner, created_at, updated_at)"
                " VALUES ('org-b', 'sneaky', 't', 1, 'x', now(), now())"
            )
    finally:
        uow.close()


def test_optimistic_update_and_tenant_is_not_session_state(settings: Settings) -> None:
    uow = PostgresUnitOfWork(settings, pool_max=1)
    try:
        with uow.transaction("org-c") as tx:
            tx.documents.insert(_doc("org-c", "opt-1"), CHANGE)
        with uow.transaction("org-c") as tx:
            assert tx.documents.update(_doc("org-c", "opt-1", 2), CHANGE, expected_version=1)
            assert not tx.documents.update(_doc("org-c", "opt-1", 3), CHANGE, expected_version=1)
        # after commit nothing lingers on the (single, reused) connection
        with uow.connection() as conn:
            row = conn.execute(
                "SELECT current_user AS u, current_setting('app.org', true) AS org, "
                "current_setting('statement_timeout') AS st"
            ).fetchone()
            conn.rollback()
        assert row["u"] != "docs_app" and row["org"] in ("", None) and row["st"] == "0"
    finally:
        uow.close()


def test_audit_log_is_append_only(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (org, actor, action) VALUES ('o', 'a', 'x')")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE audit_log SET actor = 'mallory'")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("DELETE FROM audit_log")


def test_unreachable_database_is_503_not_500() -> None:
    from devtools.services import free_port

    dead = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x", db_connect_timeout_s=1
    )
    uow = PostgresUnitOfWork(dead)
    try:
        with pytest.raises(DependencyUnavailable) as err:
            uow.ping()
        assert problem_of(err.value).status == 503 and err.value.headers["Retry-After"]
    finally:
        uow.close()
