"""functions/migrate.py against a fresh database."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from chalicelib.adapters.postgres import MIGRATIONS_DIR
from chalicelib.config import Settings
from devtools.events import LambdaContext
from tests.conftest import ADMIN_DATABASE_URL, database_url_for, drop_database

pytestmark = pytest.mark.integration


def test_migrate_handler_applies_everything_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions import migrate as fn

    name = f"docs_t_fn_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url_for(name)
    try:
        monkeypatch.setattr(fn, "get_settings", lambda: Settings(database_url=url))
        every = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
        assert fn.handler({}, LambdaContext.new()) == {"applied": every}
        assert fn.handler({}, LambdaContext.new()) == {"applied": []}
    finally:
        drop_database(url)


def test_iam_auth_puts_a_token_in_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.adapters.postgres import PostgresUnitOfWork
    from functions.migrate import database_url

    asked: list[str | None] = []

    def token(self: PostgresUnitOfWork, conninfo: str | None = None) -> str:
        asked.append(conninfo)
        return "tok/en+="

    monkeypatch.setattr(PostgresUnitOfWork, "iam_token", token)
    settings = Settings(database_url="postgresql://docs@proxy.example:5432/docs", db_iam_auth=True)
    assert (
        database_url(settings)
        == "postgresql://docs:tok%2Fen%2B%3D@proxy.example:5432/docs?sslmode=require"
    )
    # the token is the migration login's, not the runtime login's
    assert asked == ["postgresql://docs@proxy.example:5432/docs"]
    assert database_url(Settings(database_url="postgresql://x@h/db")) == "postgresql://x@h/db"
    other_params = Settings(
        database_url="postgresql://docs@proxy.example/docs?connect_timeout=3", db_iam_auth=True
    )
    assert database_url(other_params).endswith("/docs?connect_timeout=3&sslmode=require")


def test_iam_auth_needs_a_user_and_host() -> None:
    from functions.migrate import database_url

    with pytest.raises(ValueError, match="user and a host"):
        database_url(Settings(database_url="postgresql:///docs", db_iam_auth=True))
