"""Shared fixtures: a private database and Redis key prefix per test run.

Integration and e2e tests use the real PostgreSQL and Redis of the machine
(DATABASE_URL / REDIS_URL, else the defaults).  Each run (each xdist worker)
creates its own database ``docs_t_<random>`` (dropped at the end), copied from
one migrated template database per set of migrations (``docs_t_template_<digest>``,
kept for the next run), and its own Redis key prefix (its keys are deleted at
the end); nothing shared is flushed or stopped.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg.rows import dict_row

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from chalicelib.config import Settings

ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "test-secret-" + "x" * 40


def database_url_for(name: str, base: str = ADMIN_DATABASE_URL) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


TEMPLATE_PREFIX = "docs_t_template_"


def _migrations_digest() -> str:
    """Names the migrated template: a new or changed migration makes a new one."""
    import hashlib
    from pathlib import Path

    from chalicelib import migrations

    digest = hashlib.sha256(Settings().runtime_user.encode())
    for path in sorted(Path(migrations.__file__).parent.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def migrated_template(base: str = ADMIN_DATABASE_URL) -> str:
    """The name of a database with every migration applied, made once per set of
    migrations (under an advisory lock: parallel test workers wait for the first)
    and kept; templates of older migration sets are dropped when a new one is made."""
    from chalicelib.adapters.postgres import migrate

    name = f"{TEMPLATE_PREFIX}{_migrations_digest()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('docs-test-template'))")
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            building = f"docs_t_building_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{building}"')
            url = database_url_for(building, base)
            migrate(url, runtime_user=Settings(database_url=url).runtime_user)
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')  # whole or none
            stale = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
                (f"{TEMPLATE_PREFIX}%", name),
            ).fetchall()
            for (old,) in stale:
                conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('docs-test-template'))")


def create_database(base: str = ADMIN_DATABASE_URL) -> str:
    """A fresh database with every migration applied; returns its URL.  A copy of the
    migrated template (``CREATE DATABASE … TEMPLATE``), not a migration run per test."""
    template = migrated_template(base)
    name = f"docs_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url_for(name, base)


def drop_database(url: str, base: str = ADMIN_DATABASE_URL) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def admin_connection(target: Any) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to the database of ``target`` (a container, its
    settings, or a URL) as DATABASE_URL's login, the admin: it sees every org.
    For fixtures that seed or inspect rows across orgs; the service itself
    connects as the runtime login (tenant-scoped)."""
    settings = getattr(target, "settings", target)
    url = getattr(settings, "database_url", settings)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def namespace(prefix: str) -> Any:
    """A Redis key namespace under ``prefix`` for adapter tests without a container
    (a fixed database id; ``bootstrap.build`` reads the real one)."""
    from chalicelib.adapters.redis.namespace import KeyNamespace

    return KeyNamespace(prefix, lambda: "0" * 32)


def admin_sql(db_url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of one statement run as DATABASE_URL's login (the admin, every org)."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute(query, args)
        return cur.fetchall() if cur.description else []  # type: ignore[return-value]


def delete_prefix(client: redis.Redis, prefix: str) -> None:  # type: ignore[type-arg]
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    """A database of the test module's own (migrated), removed after the module:
    for tests that read or tamper with what the module's writes left behind."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"t:{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)


@pytest.fixture(scope="session")
def settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        jwt_secret=JWT_SECRET,
        db_pool_max=8,
        # every test shares one principal: a suite-wide bucket must not run dry
        # (tests/integration/test_rate_limit.py sets its own small limits)
        rate_limit_reader=(10_000.0, 20_000),
        rate_limit_writer=(10_000.0, 20_000),
        rate_limit_admin=(10_000.0, 20_000),
    )


@pytest.fixture
def container(settings: Settings) -> Iterator[Any]:
    """The real composition root (PostgreSQL + Redis), installed as the app's."""
    from chalicelib import bootstrap

    built = bootstrap.build(settings)
    bootstrap.set_container(built)
    yield built
    bootstrap.set_container(None)
    built.close()


def make_token(
    org: str = "acme", sub: str = "alice", roles: tuple[str, ...] = ("writer",), **claims: Any
) -> str:
    import time

    import jwt

    now = int(time.time())
    payload = {
        "sub": sub,
        "org": org,
        "roles": list(roles),
        "iss": "docs-local",
        "aud": "docs-api",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def request_parts(
    token: str | None, body: Any, headers: dict[str, str] | None, raw: bytes | None
) -> tuple[dict[str, str], bytes | None]:
    """The headers and body bytes a test request sends, in process or over HTTP: JSON
    unless told otherwise, the bearer token when there is one, ``raw`` as it is."""
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    return hdrs, data


class Invoker:
    """Calls ``app.handler`` with API Gateway events, as Lambda would."""

    def __init__(self, token: str | None) -> None:
        import app as app_module
        from devtools.events import LambdaContext, api_gateway_event

        self.app = app_module
        self.resources = tuple(app_module.app.routes)
        self._event = api_gateway_event
        self._context = LambdaContext
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        token: str | bool | None = True,
    ) -> Response:
        use = self.token if token is True else token
        hdrs, data = request_parts(use or None, body, headers, raw)
        event = self._event(self.resources, method, path, headers=hdrs, body=data)
        assert event is not None, f"no route for {path}"
        result = self.app.handler(event, self._context.new())
        return Response(result)


class Response:
    def __init__(self, result: dict[str, Any]) -> None:
        self.status = int(result["statusCode"])
        self.headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        self.text = result.get("body") or ""

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:200]}>"


@pytest.fixture
def invoke(container: Any) -> Callable[..., Response]:
    return Invoker(make_token())


# ------------------------------------------------------------------ search
OPENSEARCH_URL = os.environ.get("OPENSEARCH_URL")


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """OPENSEARCH_URL when set (a real OpenSearch), else an in-memory
    OpenSearch-compatible server for the session.  Tests isolate themselves
    with their own alias (and drop their indexes), never by wiping the server."""
    if OPENSEARCH_URL:
        yield OPENSEARCH_URL
        return
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    yield server.url
    server.close()


@pytest.fixture(scope="session")
def local_search_env(opensearch_url: str) -> Iterator[dict[str, str]]:
    """One OpenSearch and alias for every local server of the run that uses the
    run's database: a consumer writing elsewhere would be refused (devtools/sync_worker)."""
    alias = f"e2e{uuid.uuid4().hex[:8]}-docs"
    yield {"OPENSEARCH_URL": opensearch_url, "DOCS_SEARCH_ALIAS": alias}
    drop_search_indexes(opensearch_url, alias)


def drop_search_indexes(url: str, alias: str) -> None:
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[url], timeout=5)
    try:
        for name in client.indices.get(index=f"{alias}-v*"):
            client.indices.delete(index=name)
    except Exception:
        pass


@contextmanager
def fresh_container(
    settings: Settings, *, search_url: str | None = None, **update: Any
) -> Iterator[Any]:
    """The real composition root on a fresh database of its own (with ``search_url``,
    also an index alias of its own), installed as the app's; ``update`` changes
    other settings.  Everything it made is removed afterwards."""
    from chalicelib import bootstrap

    url = create_database()
    own: dict[str, Any] = {"database_url": url}
    if search_url:
        own |= {"opensearch_url": search_url, "search_alias": f"t{uuid.uuid4().hex[:8]}-docs"}
    built = bootstrap.build(settings.model_copy(update={**own, **update}))
    bootstrap.set_container(built)
    try:
        yield built
    finally:
        bootstrap.set_container(None)
        built.close()
        if search_url:
            drop_search_indexes(search_url, own["search_alias"])
        drop_database(url)


@pytest.fixture
def search_container(settings: Settings, opensearch_url: str) -> Iterator[Any]:
    """A container with its own fresh database (the outbox is a shared stream:
    a consumer drains every org's rows) and its own index alias."""
    with fresh_container(
        settings, search_url=opensearch_url, search_retry_base_s=0.0, search_max_attempts=3
    ) as built:
        yield built


# ------------------------------------------------------------------ AWS (moto)
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A private moto server (S3, SQS) on a free port, for one test module."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    from devtools.services import start_moto

    url, stop = start_moto()
    yield url
    # moto's state is per process, shared by every moto server in it: leave none behind
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    stop()


# ------------------------------------------------------------------ search helpers
def sync_search(container: Any) -> None:
    """Drain the outbox into the index and make it searchable now."""
    container.search_sync.drain()
    container.search_index.refresh()


def post_search(api: Invoker, **body: Any) -> dict[str, Any]:
    r = api("POST", "/search", body)
    assert r.status == 200, r
    assert r.headers["cache-control"] == "no-store"
    result: dict[str, Any] = r.json()
    return result


def read_feed(api: Invoker, query: str, expect: int = 0) -> dict[str, Any]:
    """A changes-feed page, read again (for up to 15 s) until it holds ``expect``
    changes: the feed rightly holds rows back while any older transaction of the
    PostgreSQL cluster is open, and the cluster is shared with other test runs."""
    from tests.polling import poll

    def read() -> dict[str, Any]:
        r = api("GET", f"/changes?{query}")
        assert r.status == 200, r
        page: dict[str, Any] = r.json()
        return page

    return poll(read, lambda page: len(page["changes"]) >= expect)


# ------------------------------------------------------------------ the local server
@pytest.fixture(scope="session")
def server(database_url: str, redis_prefix: str, local_search_env: dict[str, str]) -> Iterator[str]:
    """The run's local server (one per xdist worker), shared by every test that needs no
    settings of its own; its URL."""
    from tests.e2e.conftest import LocalServer, server_env

    running = LocalServer(server_env(database_url, REDIS_URL, redis_prefix, **local_search_env))
    yield running.base
    running.stop()


# ------------------------------------------------------------------ terminal summary
def pytest_runtest_logreport(report: Any) -> None:
    from tests import summaries

    summaries.collect(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault campaign's table and the drills' figures (tests/summaries.py)."""
    from tests import summaries

    summaries.write(terminalreporter)
