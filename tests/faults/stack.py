"""One private stack for the whole campaign, and the checks every fault ends with.

Private PostgreSQL, Redis and search server on free ports (``servers.py``),
the local server (``python -m devtools.cli serve``: HTTP workers, its search
sync process, its own moto for content) over them, a campaign moto server for
the queues the delivery faults mangle, and an in-process container on the same
database and Redis for the checks and for the Lambda handlers the delivery
faults invoke.  Faults run one after another on it (the machine's shared
PostgreSQL and Redis are never touched); each fault's load writes to its own
org, and every check covers every org written so far.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from psycopg.rows import dict_row

from chalicelib import bootstrap
from chalicelib.adapters.postgres.outbox_listener import Consumer
from chalicelib.config import Settings
from chalicelib.domain.search_index import index_id
from devtools.services import free_port
from tests.conftest import JWT_SECRET, make_token
from tests.e2e.conftest import ROOT, Client, LocalServer, server_env
from tests.faults.load import Ack, MixedLoad
from tests.faults.servers import PrivatePostgres, PrivateRedis, PrivateSearch
from tests.polling import poll


def multi_host_url(*ports: int) -> str:
    """The service's DATABASE_URL over every host that may be the primary: libpq
    tries them in order and keeps the first that accepts writes, so after a
    failover new connections find the promoted standby."""
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"


CONVERGE_S = 90.0  # a deadline for convergence, never a timing assertion
READ_BACK_THREADS = 3  # the campaign server's workers


def _moto_process() -> tuple[str, Any, Any]:
    """moto in a process of its own: not behind the GIL of the load's threads, and
    its state not shared with (nor reset by) the other test modules' moto servers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return True
        except OSError:
            return proc.poll() is not None

    def stop() -> None:
        proc.kill()
        proc.wait(10)

    def ready() -> None:
        if not poll(answering, timeout_s=60) or proc.poll() is not None:
            raise RuntimeError("the campaign's moto server did not start")

    return url, stop, ready  # started; ready() waits for it (it imports for seconds)


@dataclass
class Campaign:
    pg: PrivatePostgres
    redis: PrivateRedis
    search: PrivateSearch
    server: LocalServer
    moto: str
    settings: Settings
    checker: Any  # an in-process container: cache and index reads for the checks
    standby_port: int = 0  # named in the service's DATABASE_URL before a standby exists
    acks: dict[tuple[str, str], Ack] = field(default_factory=dict)  # every fault's so far
    orgs: list[str] = field(default_factory=list)
    sync_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    watchers: list[Any] = field(default_factory=list)  # real-time subscribers verify checks
    _stoppers: list[Any] = field(default_factory=list)

    # -- construction -------------------------------------------------------------
    @classmethod
    def start(cls) -> Campaign:
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            os.environ.setdefault(name, value)  # moto's; the Lambda handlers' clients need some
        moto, stop_moto, moto_ready = _moto_process()
        stoppers: list[Any] = [stop_moto]
        try:
            pg, cache, search = PrivatePostgres(), PrivateRedis(), PrivateSearch()
            stoppers.append(pg.destroy)
            standby_port = free_port()
            database_url = multi_host_url(pg.port, standby_port)
            pg.start()
            cache.start()
            stoppers.append(cache.kill)
            search.start()
            stoppers.append(search.kill)
            alias = f"faults{uuid.uuid4().hex[:6]}-docs"
            server = LocalServer(
                server_env(
                    database_url, cache.url, "faults:", OPENSEARCH_URL=search.url,
                    DOCS_SEARCH_ALIAS=alias, DOCS_WORKERS="3", DOCS_BREAKER_RESET_S="1",
                    DOCS_DB_CONNECT_TIMEOUT_S="1", DOCS_SEARCH_RETRY_BASE_S="0.05",
                )
            )  # fmt: skip
            stoppers.append(server.stop)
            settings = Settings(
                database_url=database_url, redis_url=cache.url, redis_key_prefix="faults:",
                jwt_secret=JWT_SECRET, opensearch_url=search.url, search_alias=alias,
                aws_endpoint_url=moto, breaker_reset_s=1.0, db_connect_timeout_s=1.0,
                search_retry_base_s=0.05, search_max_attempts=3,
            )  # fmt: skip
            checker = bootstrap.build(settings)
            stoppers.append(checker.close)
            moto_ready()
        except BaseException:
            for stop in reversed(stoppers):
                with contextlib.suppress(Exception):
                    stop()
            raise
        campaign = cls(
            pg, cache, search, server, moto, settings, checker,
            standby_port=standby_port, _stoppers=stoppers,
        )  # fmt: skip
        campaign.sync_procs.append(campaign._standby())  # warm before the first kill
        return campaign

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.close()
        for proc in self.sync_procs:
            if proc.stdin is not None:
                proc.stdin.close()  # a standby sees EOF and exits
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for stop in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                stop()

    def on_stop(self, stop: Any) -> None:
        """Call ``stop`` when the campaign stops (a server a fault started)."""
        self._stoppers.append(stop)

    # -- load -------------------------------------------------------------------------
    def client(self, org: str, roles: tuple[str, ...] = ("writer",)) -> Client:
        return Client(self.server.base, make_token(org=org, sub="faults", roles=roles))

    def load(self, org: str, seed: int) -> MixedLoad:
        self.orgs.append(org)
        return MixedLoad(self.client(org), seed=seed).start()

    def keep(self, org: str, load: MixedLoad) -> None:
        """Add a finished load's acknowledgements to the campaign's."""
        for doc, ack in load.acks.items():
            self.acks[(org, doc)] = ack

    # -- PostgreSQL -------------------------------------------------------------------
    @contextlib.contextmanager
    def admin(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with psycopg.connect(self.pg.url, autocommit=True, row_factory=dict_row) as conn:
            yield conn

    def pending_outbox(self) -> int:
        with self.admin() as conn:
            row = conn.execute("SELECT count(*) AS n FROM outbox WHERE processed_at IS NULL")
            return int(row.fetchone()["n"])  # type: ignore[index]

    # -- the search sync consumers ----------------------------------------------------
    def consumers(self) -> list[int]:
        """Pids of the consumers registered on the outbox (their listener connections)."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
                ("docs-sync %",),
            ).fetchall()
        found = (Consumer.parse(r["application_name"]) for r in rows)
        return sorted({c.pid for c in found if c is not None})

    def kill_consumers(self) -> list[int]:
        """SIGKILL every registered consumer until none is left registered."""
        killed: list[int] = []

        def none_left() -> bool:
            for pid in self.consumers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            return not self.consumers()

        assert poll(none_left, timeout_s=20), "a consumer stayed registered"
        return killed

    def _standby(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.sync_standby"], cwd=ROOT, env=self.server.env,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start_sync(self) -> subprocess.Popen[bytes]:
        """A new search sync process, as the next invocation of the sync function
        would be (the standby, released); returns once it listens on the outbox."""
        before = set(self.consumers())
        proc = self.sync_procs.pop() if self.sync_procs else self._standby()
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        self.sync_procs += [proc, self._standby()]  # the next one warms up meanwhile
        assert poll(lambda: proc.pid in set(self.consumers()) - before, timeout_s=30), (
            "the new sync process registered on the outbox"
        )
        return proc

    # -- the real-time process ---------------------------------------------------------
    def realtime_hubs(self) -> dict[int, str]:
        """The local server's real-time processes: pid -> fan-out consumer name (from
        their LISTEN connections' application_name)."""
        from devtools.realtime_hub import LISTENER_APP, parse_listener

        with self.admin() as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"{LISTENER_APP} %",),
            ).fetchall()
        found = (parse_listener(r["application_name"]) for r in rows)
        return dict(hub for hub in found if hub is not None)

    def realtime_caught_up(self) -> bool:
        """Whether the live fan-out's cursor (``realtime_cursors``) is at the outbox head."""
        consumers = sorted(self.realtime_hubs().values())
        if not consumers:
            return False
        with self.admin() as conn:
            row = conn.execute(
                "SELECT bool_and(c.txid > h.txid OR (c.txid = h.txid AND c.seq >= h.seq)) AS ok "
                "FROM realtime_cursors c, (SELECT txid, seq FROM outbox "
                "ORDER BY txid DESC, seq DESC LIMIT 1) h WHERE c.name = ANY(%s)",
                (consumers,),
            ).fetchone()
        return bool(row and row["ok"])

    # -- the checks every fault ends with ----------------------------------------------
    def verify(self) -> dict[str, int]:
        """Converge, then check every org written so far; returns what was checked."""
        assert poll(self.pending_outbox, lambda n: n == 0, timeout_s=CONVERGE_S) == 0, (
            "the outbox drained"
        )
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT org, id, version, deleted_at IS NOT NULL AS deleted FROM documents "
                "WHERE org = ANY(%s)",
                (self.orgs,),
            ).fetchall()
            dead = conn.execute("SELECT org, doc_id, reason FROM search_dead_letters").fetchall()
        stored = {(r["org"], r["id"]): (int(r["version"]), bool(r["deleted"])) for r in rows}
        assert dead == [], f"nothing in the search dead letters: {dead[:5]}"

        lost = {
            key: ack
            for key, ack in self.acks.items()
            if key not in stored
            or stored[key][0] < ack.version
            or (ack.deleted and not stored[key][1])
            or (not ack.deleted and stored[key][1] and stored[key][0] == ack.version)
        }
        assert lost == {}, "every acknowledged write is in PostgreSQL, at its version or later"

        stale_cache = {}
        for (org, doc), (version, deleted) in stored.items():
            entry = self.checker.cache.get(org, doc)
            if entry is not None and (entry.version, entry.body is None) != (version, deleted):
                stale_cache[(org, doc)] = (entry.version, version)
        assert stale_cache == {}, "the cache holds PostgreSQL's version or nothing"

        self.checker.search_index.refresh()
        held = {key: v for key, (v, _) in self.checker.search_index.all_documents().items()}
        wrong_index = {
            key: (held.get(index_id(*key)), version)
            for key, (version, deleted) in stored.items()
            if held.get(index_id(*key)) != (None if deleted else version)
        }
        assert wrong_index == {}, "the index holds every live document at PostgreSQL's version"

        assert poll(self.realtime_caught_up, timeout_s=CONVERGE_S), (
            "the real-time fan-out's cursor reached the outbox head"
        )
        pushed = self._watched(stored)
        reads = self._read_back(stored)
        return {"docs": len(stored), "acked": len(self.acks), "read_back": reads, **pushed}

    def _watched(self, stored: dict[tuple[str, str], tuple[int, bool]]) -> dict[str, int]:
        """Every real-time subscriber saw the final version of every document
        acknowledged in its org (at least once; duplicates dropped by version)."""
        checked = 0
        for watcher in self.watchers:
            final = {
                doc: version
                for (org, doc), (version, _) in stored.items()
                if org == watcher.org and (org, doc) in self.acks
            }
            missed = poll(partial(watcher.missing, final), lambda m: not m, timeout_s=CONVERGE_S)
            assert not missed, f"a subscriber saw the final version of each document: {missed}"
            watcher.close()
            checked += len(final)
        self.watchers.clear()
        return {"pushed": checked} if checked else {}

    def _read_back(self, stored: dict[tuple[str, str], tuple[int, bool]]) -> int:
        """Through the server (cache first): every document at PostgreSQL's version.
        A few reads at a time (the server's workers serve in parallel): this runs
        after every fault over every org so far, so it is most of ``verify``."""
        clients = {org: self.client(org, ("reader",)) for org in self.orgs}

        def read(key: tuple[str, str]) -> tuple[int, int | None]:
            r = clients[key[0]].request("GET", f"/documents/{key[1]}")
            return (404, None) if r.status == 404 else (r.status, r.json().get("version"))

        with ThreadPoolExecutor(READ_BACK_THREADS) as pool:
            got = dict(zip(stored, pool.map(read, stored), strict=True))
        wrong = {
            key: (got[key], version, deleted)
            for key, (version, deleted) in stored.items()
            if got[key] != ((404, None) if deleted else (200, version))
        }
        assert wrong == {}, "a read through the server returns PostgreSQL's version"
        return len(stored)
