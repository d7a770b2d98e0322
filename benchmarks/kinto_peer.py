"""Kinto as the durable HTTP peer: its config, its own database, gunicorn, the seed.

Kinto (a Python JSON document service, installed by ``benchmarks.peers`` into
``var/bench/kinto/venv``) keeps its records, permissions and cache in
PostgreSQL: here in a database of its own on the machine's server, created for
the run and dropped after it.  It is served by gunicorn with gthread workers
(as many as the local server's), keep-alive, and authenticates with HTTP basic
auth (Kinto's cheapest policy: the user id is an HMAC of the credentials).
The documents live in one collection, ``/buckets/bench/collections/docs``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "kinto_bench_"
COLLECTION = "/v1/buckets/bench/collections/docs"
USER, PASSWORD = "bench", "bench-password"
BATCH = 100  # records per POST /v1/batch (kinto.batch_max_requests below)

INI = """\
[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {url}
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {url}
kinto.cache_backend = kinto.core.cache.postgresql
kinto.cache_url = {url}
kinto.userid_hmac_secret = {secret}
multiauth.policies = basicauth
kinto.bucket_create_principals = system.Authenticated
kinto.batch_max_requests = {batch}

# Warnings only: a request log line per request would measure the console.
[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s
"""


def authorization() -> str:
    """The ``Authorization`` header value of the bench user."""
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def render_ini(database_url: str, secret: str) -> str:
    """Kinto's .ini: storage, permissions and cache on ``database_url``."""
    return INI.format(url=database_url, secret=secret, batch=BATCH)


def _database_url(name: str) -> str:
    parts = urlsplit(ADMIN_DATABASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database() -> str:
    """An empty private database for Kinto; its URL."""
    import psycopg

    name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _database_url(name)


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    assert name.startswith(PREFIX), name  # never anything but our own
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(venv: Path, ini: Path, log: Path) -> None:
    """``kinto migrate``: create Kinto's schema in its database."""
    with log.open("ab") as out:
        subprocess.run(
            [str(venv / "bin" / "kinto"), "migrate", "--ini", str(ini)],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300,
        )  # fmt: skip


def gunicorn_command(venv: Path, ini: Path, port: int, workers: int, threads: int) -> list[str]:
    """gunicorn serving Kinto's app from the .ini: gthread workers, keep-alive."""
    return [
        str(venv / "bin" / "gunicorn"),
        "--paste", str(ini),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--keep-alive", "75",
        "--log-level", "warning",
    ]  # fmt: skip


def start(
    venv: Path, work: Path, port: int, workers: int, threads: int
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Create the database and config, migrate, start gunicorn; (process, db url, log)."""
    work.mkdir(parents=True, exist_ok=True)
    url = create_database()
    ini, log = work / "kinto.ini", work / "kinto.log"
    log.write_bytes(b"")
    ini.write_text(render_ini(url, uuid.uuid4().hex))
    try:
        migrate(venv, ini, log)
        out = log.open("ab")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.Popen(
            gunicorn_command(venv, ini, port, workers, threads),
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
    except BaseException:
        drop_database(url)
        raise
    return proc, url, log


def seed_requests(ids: list[str], documents: list[dict[str, object]]) -> dict[str, object]:
    """One ``POST /v1/batch`` body that PUTs each document as a record."""
    return {
        "defaults": {"method": "PUT"},
        "requests": [
            {"path": f"{COLLECTION.removeprefix('/v1')}/records/{i}", "body": {"data": doc}}
            for i, doc in zip(ids, documents, strict=True)
        ],
    }
