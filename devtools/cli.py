"""Command line: ``serve`` the local stack, mint dev ``token``s, ``migrate``, search ops.

python -m devtools.cli serve [--port 8000] [--embedded] [--workers 4] [--detach]
python -m devtools.cli stop                           # stop the server serve --detach started
python -m devtools.cli token --org acme --sub alice --roles writer
python -m devtools.cli migrate [--database-url URL] [--runtime-user NAME]
python -m devtools.cli reindex [--drop-old-now]     # new index, backfill, catch up, swap alias
python -m devtools.cli sync [--once]                # the search sync loop (or one drain)
python -m devtools.cli dead-letters [--requeue]     # search sync failures

(``python -m chalicelib.cli …`` is the same command line.)  While a local
server runs, the other commands find its services in ``var/local-stack.json``
(``devtools/state.py``); otherwise they use DATABASE_URL, REDIS_URL and
OPENSEARCH_URL, with the local stack's defaults.  Misconfiguration and
unreachable services end in one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from devtools import state

ROOT = state.ROOT
VAR = state.VAR
DEV_SECRET_FILE = VAR / "dev-jwt-secret"
DETACH_LOG = VAR / "serve.log"
DETACH_WAIT_S = 600.0  # a fresh clone starts embedded services the first time


class CliError(Exception):
    """Said in one sentence on stderr; exit status 2."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dev_secret(create: bool) -> str | None:
    """DOCS_JWT_SECRET, else the local dev secret file (created by ``serve``)."""
    if os.environ.get("DOCS_JWT_SECRET"):
        return os.environ["DOCS_JWT_SECRET"]
    if DEV_SECRET_FILE.exists():
        return DEV_SECRET_FILE.read_text().strip()
    if not create:
        return None
    VAR.mkdir(exist_ok=True)
    DEV_SECRET_FILE.write_text(secrets.token_urlsafe(48))
    DEV_SECRET_FILE.chmod(0o600)
    return DEV_SECRET_FILE.read_text().strip()


def use_local_stack(*, search: bool = False) -> state.LocalState | None:
    """Point this process at the running local server's services (those not set in
    the environment), else at the local stack's defaults; check the URLs."""
    from devtools import services

    running = state.read()
    if running is not None and state.adopt(running):
        _say(f"using the local server at {running.url} (pid {running.pid}; {state.state_file()})")
    else:
        running = None
        os.environ.setdefault("DATABASE_URL", services.DEFAULT_DATABASE_URL)
        os.environ.setdefault("DOCS_REDIS_KEY_PREFIX", services.LOCAL_REDIS_PREFIX)
    for name in ("DATABASE_URL", "REDIS_URL", "OPENSEARCH_URL"):
        if os.environ.get(name):
            services.check_url(name, os.environ[name])
    local_pii_defaults()
    if search and not os.environ.get("OPENSEARCH_URL"):
        raise CliError(
            "OPENSEARCH_URL is not set and no local server is running: start one "
            "(./scripts/serve.sh --detach), or set OPENSEARCH_URL to your OpenSearch"
        )
    return running


# ------------------------------------------------------------------ token, migrate
def cmd_token(args: argparse.Namespace) -> int:
    from chalicelib.api.auth import mint_token
    from chalicelib.config import Settings
    from chalicelib.domain.principal import ROLE_RANK

    roles = [r for part in args.roles for r in part.split(",") if r]
    unknown = sorted(set(roles) - set(ROLE_RANK))
    if unknown:
        raise CliError(
            f"unknown role {', '.join(map(repr, unknown))}: the service knows "
            f"{', '.join(ROLE_RANK)} (a token with another role grants nothing)"
        )
    secret = dev_secret(create=False)
    if not secret:
        raise CliError(
            "no dev secret: set DOCS_JWT_SECRET, or run 'serve' once"
            " (it creates var/dev-jwt-secret)"
        )
    settings = Settings(jwt_secret=secret)
    print(mint_token(settings, org=args.org, sub=args.sub, roles=roles, ttl_s=args.ttl))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from chalicelib.adapters.postgres import migrate
    from chalicelib.config import get_settings

    if not args.database_url:
        use_local_stack()
    settings = get_settings()
    applied = migrate(
        args.database_url or settings.database_url,
        runtime_user=args.runtime_user or settings.runtime_user,
    )
    print(json.dumps({"applied": applied}))
    return 0


# ------------------------------------------------------------------ serve, stop
def _log(msg: str, **fields: Any) -> None:
    print(json.dumps({"level": "INFO", "msg": msg, **fields}), flush=True)


def _raise_on_sigterm() -> None:
    """Until the server loop takes over SIGTERM: unwind, so what started is stopped."""

    def terminate(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(args)
    from devtools import server, services

    _raise_on_sigterm()
    sock = server.listen(args.host, args.port)  # first: a taken port stops us at once
    stack: services.LocalStack | None = None
    try:
        stack = services.resolve(embedded=args.embedded, data_dir=VAR / "embedded", port=args.port)
        for note in stack.notes:
            _log("local stack", service=note)
        _configure(stack, args.port)
        _migrate(stack)
        if stack.opensearch_url:
            _check_consumers()
        if stack.s3_endpoint:  # bucket + ObjectCreated → SQS → process_upload poller
            from chalicelib.config import Settings
            from devtools import s3_stack

            bucket = Settings().content_bucket
            stop_poller = s3_stack.start(stack.s3_endpoint, bucket, inherited=(sock,))
            stack._stoppers.append(stop_poller)
        if stack.opensearch_url:
            stack._stoppers.append(_start_sync_process(sock))
        if stack.s3_endpoint:  # POST /me/export jobs (functions/export_worker.py in AWS)
            stack._stoppers.append(_start_export_process(sock))
        stack._stoppers.append(_start_realtime_process(sock))
        url = f"http://{args.host}:{args.port}"
        server.serve(
            args.host, args.port, args.workers, sock=sock, on_ready=lambda: _publish(url, args.port)
        )
    finally:
        sock.close()
        if stack is not None:
            stack.stop()
        state.remove(os.getpid())
    return 0


def _configure(stack: Any, port: int) -> None:
    """The environment every process of the server (and the CLI, via the state file)
    runs with."""
    from devtools import services

    os.environ["DATABASE_URL"] = stack.database_url
    os.environ["REDIS_URL"] = stack.redis_url
    os.environ.setdefault("DOCS_REDIS_KEY_PREFIX", services.local_redis_prefix(port))
    os.environ["DOCS_JWT_SECRET"] = dev_secret(create=True) or ""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    local_pii_defaults()
    if stack.opensearch_url:
        os.environ["OPENSEARCH_URL"] = stack.opensearch_url
        os.environ.setdefault("DOCS_SEARCH_NUDGE", "notify")  # wakes the sync loop
    if stack.s3_endpoint:
        os.environ["DOCS_AWS_ENDPOINT_URL"] = stack.s3_endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def local_pii_defaults(env: Any = os.environ) -> None:
    """The local stack's dev keys for personal-data fields (docs/compliance.md): a
    fixed, public key, so values written by one local run open in the next.  Only
    here: no other place has a default, and AWS uses KMS."""
    import base64
    import hashlib

    def dev_key(label: str) -> str:
        digest = hashlib.sha256(f"docs-local-dev:{label}".encode()).digest()
        return base64.b64encode(digest).decode()

    env.setdefault("DOCS_PII_LOCAL_KEYS", f"dev1:{dev_key('pii-master-1')}")
    env.setdefault("DOCS_PII_BLIND_KEY", dev_key("pii-blind-1"))


def _migrate(stack: Any) -> None:
    """Migrations run as DATABASE_URL's login (the owner); the API, the sync and the
    CLI's other commands connect as the runtime login."""
    from chalicelib.adapters.postgres import migrate
    from chalicelib.config import Settings
    from devtools import services

    runtime = Settings()
    applied = migrate(stack.database_url, runtime_user=runtime.runtime_user)
    _log("migrated", applied=applied)
    reason = services.postgres_reachable(runtime.runtime_database_url)
    if reason:
        raise services.ServiceUnavailable(
            f"the runtime login {runtime.runtime_user!r} cannot connect ({reason}); "
            "set DOCS_DB_RUNTIME_URL (docs/database-roles.md)"
        )


def _check_consumers() -> None:
    """Before serving: refuse when another consumer of this outbox writes elsewhere."""
    from chalicelib import bootstrap
    from devtools import sync_worker

    container = bootstrap.build()  # closed again: the forked workers build their own
    try:
        sync_worker.check(container)
    finally:
        container.close()


def _publish(url: str, port: int) -> None:
    """Write this port's state file, unless a live server of this checkout owns it."""
    path = state.state_file(port)
    other = state.read(path)
    if other is not None and other.pid != os.getpid():
        _log(
            "local stack",
            note=f"another local server (pid {other.pid}, {other.url}) owns "
            f"{path}: the CLI keeps finding that one",
        )
        return
    env = {name: os.environ[name] for name in state.SHARED_ENV if os.environ.get(name)}
    log = os.environ.get("DOCS_LOCAL_LOG_FILE")
    path = state.write(state.LocalState(pid=os.getpid(), url=url, log=log, env=env), path)
    _log("local stack", state_file=str(path))


def _start_process(sock: Any, name: str, target: Any) -> Any:
    """``target`` in a forked process of its own (like its own Lambda function); the
    stopper the stack calls on its way out.  The child leaves the HTTP workers' socket
    to them and ignores SIGINT: a Ctrl-C (or a SIGINT sent to the parent alone) is
    the parent's to act on, and the parent stops its children with SIGTERM."""
    import multiprocessing

    def run() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sock.close()  # not ours to hold the port with
        target()

    proc = multiprocessing.get_context("fork").Process(target=run, daemon=True, name=name)
    proc.start()

    def stop() -> None:
        proc.terminate()
        proc.join(timeout=10)

    return stop


def _start_sync_process(sock: Any) -> Any:
    """The search sync loop (functions/sync_search.py in AWS)."""
    from devtools import sync_worker

    return _start_process(sock, "sync", sync_worker.main)


def _start_export_process(sock: Any) -> Any:
    """The personal-data export loop (functions/export_worker.py in AWS)."""
    from devtools import export_worker

    return _start_process(sock, "exports", export_worker.main)


def _start_realtime_process(sock: Any) -> Any:
    """The real-time process (WebSocket, server-sent events, the fan-out): the workers
    hand those connections over to it (devtools/realtime_hub.py).  Supervised: if it
    dies it is started again on the same socket (devtools/supervise.py), and clients
    resume from their last seq.  Off with DOCS_REALTIME_ENABLED=false (the routes
    then answer as in AWS)."""
    import tempfile

    from chalicelib.config import Settings
    from devtools import realtime_hub
    from devtools.supervise import supervise

    if not Settings().realtime_enabled:
        return lambda: None
    path = os.path.join(tempfile.gettempdir(), f"docs-realtime-{os.getpid()}.sock")
    stop = _start_process(
        sock, "realtime", lambda: supervise(lambda: realtime_hub.main(path), "realtime")
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ[realtime_hub.ENV_SOCKET] = path  # the workers, forked next, hand over to it
    return stop


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - ours
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


def _detach(args: argparse.Namespace) -> int:
    """Start ``serve`` in the background; return once /health answers (or it failed)."""
    url = f"http://{args.host}:{args.port}"
    own_state = state.state_file(args.port)
    running = state.read(own_state)
    if running is not None and running.url == url and _health(url):
        print(f"already serving {url} (pid {running.pid}); stop it with ./scripts/serve.sh --stop")
        return 0
    VAR.mkdir(exist_ok=True)
    log_path = DETACH_LOG if args.port == 8000 else VAR / f"serve-{args.port}.log"
    argv = [sys.executable, "-m", "devtools.cli", "serve", "--host", args.host,
            "--port", str(args.port), "--workers", str(args.workers)]  # fmt: skip
    if args.embedded:
        argv.append("--embedded")
    with open(log_path, "wb") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            argv, cwd=ROOT, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DOCS_LOCAL_LOG_FILE": str(log_path)},
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hangup
        )  # fmt: skip
    rel_log = os.path.relpath(log_path)
    _say(f"starting the local server (pid {proc.pid}); log: {rel_log}")
    deadline = time.monotonic() + DETACH_WAIT_S
    while True:
        if proc.poll() is not None:
            lines = log_path.read_text(errors="replace").splitlines()
            said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
            if said:  # it said why in one sentence
                raise CliError(said[-1])
            raise CliError(
                f"the server did not start; see {rel_log}:\n  " + "\n  ".join(lines[-15:])
            )
        mine = state.read(own_state)
        if mine is not None and mine.pid == proc.pid and _health(url):
            break
        if time.monotonic() > deadline:
            proc.terminate()
            raise CliError(f"the server did not answer within {DETACH_WAIT_S:.0f} s; see {rel_log}")
        time.sleep(0.3)
    print(f"serving {url} (pid {proc.pid}); log: {rel_log}; stop: ./scripts/serve.sh --stop")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if args.all:
        targets = [live for _, live in state.running_servers()]
    else:
        path = state.state_file(args.port) if args.port is not None else None
        live = state.read(path)
        targets = [live] if live is not None else []
    if not targets:
        where = os.path.relpath(state.state_file(args.port))
        _say(f"no local server is running ({where})")
        return 0
    for running in targets:
        _stop_one(running, args.timeout)
    return 0


def _stop_one(running: state.LocalState, timeout: float) -> None:
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while state.pid_alive(running.pid):
        if time.monotonic() > deadline:
            _say(f"the server (pid {running.pid}) did not stop within {timeout} s; killing it")
            _kill_group(running.pid)
            break
        time.sleep(0.2)
    print(f"stopped the local server at {running.url} (pid {running.pid})")


def _kill_group(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # started by --detach: its own process group
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ search
def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    pct = 100 * done // total if total else 100
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({pct}%)")
    sys.stderr.flush()


def cmd_reindex(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap

    use_local_stack(search=True)
    report = bootstrap.container().search_sync.reindex(
        batch=args.batch, progress=_progress, drop_old_now=args.drop_old_now
    )
    sys.stderr.write("\n")
    print(json.dumps({**report.__dict__, "failed": report.failed[:100]}))
    return 0 if not report.failed else 1


def cmd_sync(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap
    from devtools import sync_worker

    use_local_stack(search=True)
    if args.once:
        container = bootstrap.container()
        listener = sync_worker.register(container)  # refuses a consumer of another index
        try:
            sync = container.search_sync
            print(json.dumps({**sync.drain().as_dict(), **sync.stats()}))
        finally:
            listener.close()
        return 0
    sync_worker.main()
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap

    use_local_stack()
    c = bootstrap.container()
    if args.requeue:
        print(json.dumps({"requeued": c.outbox.requeue_dead_letters(args.org)}))
        return 0
    rows = c.outbox.dead_letters(args.org)
    for row in rows:
        print(json.dumps(row))
    if not rows:
        _say("no dead letters" + (f" for org {args.org}" if args.org else "")
             + ": no document is waiting after failing to index")  # fmt: skip
    return 0


# ------------------------------------------------------------------ audit
def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Recompute each org's audit hash chain; exit 1 at the first broken chain."""
    from chalicelib import bootstrap

    use_local_stack()
    audit = bootstrap.container().audit
    reports = audit.verify(args.org, against_exports=args.against_exports)
    for report in reports:
        print(json.dumps(report.as_dict()))
    if not reports:
        _say(
            "no audit chain" + (f" for org {args.org}" if args.org else "") + ": nothing to verify"
        )
    return 0 if all(r.ok for r in reports) else 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Export the closed days not exported yet (what functions/audit_export.py runs)."""
    from chalicelib import bootstrap

    use_local_stack()
    for manifest in bootstrap.container().audit.export_closed_periods(days=args.days):
        print(json.dumps(manifest))
    return 0


# ------------------------------------------------------------------ gdpr
def cmd_purge(args: argparse.Namespace) -> int:
    """One purge run (the scheduled function's work): documents deleted longer ago
    than DOCS_DELETE_RETENTION_DAYS leave every store."""
    from chalicelib import bootstrap

    use_local_stack()
    report = bootstrap.container().purge.run()
    print(json.dumps({**report.as_dict(), "errors": report.errors[:10]}))
    return 1 if report.failed else 0


def cmd_pii_reencrypt(args: argparse.Namespace) -> int:
    """After a key rotation: every personal-data value under the active key."""
    from chalicelib import bootstrap

    use_local_stack()
    c = bootstrap.container()
    print(json.dumps(c.pii.reencrypt(c.pii_reencryption_store, batch=args.batch)))
    return 0


# ------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.cli")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "serve",
        help="run the API and its local stack",
        description="Serve the API with everything it needs: PostgreSQL and Redis from "
        "DATABASE_URL / REDIS_URL, else the machine's (this checkout's own database and "
        "key prefix), else embedded ones; S3/SQS on a local moto server; OpenSearch from "
        "OPENSEARCH_URL, else an embedded one.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("DOCS_WORKERS", "4")),
        help="worker processes, each serving one request at a time like a Lambda "
        "execution environment (DOCS_WORKERS, %(default)s)",
    )
    p.add_argument(
        "--embedded",
        action="store_true",
        help="always start embedded PostgreSQL and Redis under var/, even when the "
        "machine runs its own",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background and return once /health answers; the log goes to "
        "var/serve.log (var/serve-PORT.log on another port); stop it with 'stop'",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stop", help="stop a running local server (serve --detach)")
    p.add_argument("--port", type=int, help="the server on this port (default: 8000's, else any)")
    p.add_argument("--all", action="store_true", help="every local server of this checkout")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "token",
        help="print a dev token signed with the local secret",
        description="Print a dev token signed with the local secret. The server accepts "
        "it for --ttl seconds, plus DOCS_JWT_LEEWAY_S (30 s) for clocks that disagree.",
    )
    p.add_argument("--org", required=True, help="the tenant")
    p.add_argument("--sub", required=True, help="the user id")
    p.add_argument(
        "--roles", nargs="+", default=["reader"], help="reader, writer, admin (%(default)s)"
    )
    p.add_argument("--ttl", type=int, default=3600, help="seconds the token lives (%(default)s)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("migrate", help="apply pending SQL migrations")
    p.add_argument("--database-url", help="the migration (owner) login's URL; default DATABASE_URL")
    p.add_argument("--runtime-user", help="the runtime login granted docs_app (default: settings)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("reindex", help="build a new search index and swap the alias to it")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--drop-old-now", action="store_true", help="no grace period for the old one")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("sync", help="run the search sync loop (LISTEN/NOTIFY + poll)")
    p.add_argument("--once", action="store_true", help="drain once and print the report")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("dead-letters", help="list (or --requeue) search sync dead letters")
    p.add_argument("--requeue", action="store_true")
    p.add_argument("--org")
    p.set_defaults(func=cmd_dead_letters)

    audit = sub.add_parser("audit", help="the audit trail: verify its chain, export closed days")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="recompute the hash chain; exit 1 if it is broken")
    p.add_argument("--org", help="one org (default: every org)")
    p.add_argument(
        "--against-exports",
        action="store_true",
        help="also compare with the manifests in the audit bucket (Object Lock)",
    )
    p.set_defaults(func=cmd_audit_verify)
    p = audit_sub.add_parser("export", help="export closed days to the audit bucket")
    p.add_argument("--days", type=int, default=3, help="closed days to look at")
    p.set_defaults(func=cmd_audit_export)
    p = sub.add_parser("purge", help="purge documents deleted before the restore window")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("pii-reencrypt", help="re-encrypt personal-data fields (key rotation)")
    p.add_argument("--batch", type=int, default=500)
    p.set_defaults(func=cmd_pii_reencrypt)
    return parser


def _quiet_stdout() -> None:
    """stdout's reader went away (``… | head``): no traceback at exit either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import psycopg

    from chalicelib.domain.errors import DomainError

    try:
        return int(args.func(args))
    except CliError as exc:
        _say(f"error: {exc}")
    except SystemExit as exc:  # ServiceUnavailable, PortUnavailable, ConsumerConflict
        if not isinstance(exc.code, str):
            raise
        _say(f"error: {exc.code}")
    except psycopg.OperationalError as exc:
        _say(f"error: PostgreSQL: {str(exc).strip().splitlines()[0]}; {_hint()}")
    except DomainError as exc:
        _say(f"error: {exc}; {_hint()}")
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        return 130
    return 2


def _hint() -> str:
    from devtools import services

    url = os.environ.get("DATABASE_URL", "")
    where = f" (DATABASE_URL is {services.redact(url)})" if url else ""
    return f"is the local server running (./scripts/serve.sh --detach){where}?"


if __name__ == "__main__":
    sys.exit(main())
