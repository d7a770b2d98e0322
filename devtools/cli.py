"""Command line: ``serve`` the local stack, mint dev ``token``s, ``migrate``.

python -m devtools.cli serve --host 127.0.0.1 --port 8000 [--embedded] [--workers 4]
python -m devtools.cli token --org acme --sub alice --roles writer
python -m devtools.cli migrate [--database-url URL] [--runtime-user NAME]
python -m devtools.cli reindex [--drop-old-now]     # new index, backfill, catch up, swap alias
python -m devtools.cli sync [--once]                # the search sync loop (or one drain)
python -m devtools.cli dead-letters [--requeue]     # search sync failures
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DEV_SECRET_FILE = VAR / "dev-jwt-secret"


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


def cmd_token(args: argparse.Namespace) -> int:
    from chalicelib.auth import mint_token
    from chalicelib.config import Settings

    secret = dev_secret(create=False)
    if not secret:
        print(
            "no dev secret: set DOCS_JWT_SECRET, or run 'serve' once"
            " (it creates var/dev-jwt-secret)",
            file=sys.stderr,
        )
        return 2
    roles = [r for part in args.roles for r in part.split(",") if r]
    settings = Settings(jwt_secret=secret)
    print(mint_token(settings, org=args.org, sub=args.sub, roles=roles, ttl_s=args.ttl))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from chalicelib.adapters.postgres import migrate
    from chalicelib.config import get_settings

    settings = get_settings()
    applied = migrate(
        args.database_url or settings.database_url,
        runtime_user=args.runtime_user or settings.runtime_user,
    )
    print(json.dumps({"applied": applied}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from devtools import services
    from devtools.server import serve

    stack = services.resolve(embedded=args.embedded, data_dir=VAR / "embedded")
    try:
        for note in stack.notes:
            print(json.dumps({"level": "INFO", "msg": "local stack", "service": note}), flush=True)
        os.environ["DATABASE_URL"] = stack.database_url
        os.environ["REDIS_URL"] = stack.redis_url
        os.environ["DOCS_JWT_SECRET"] = dev_secret(create=True) or ""
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        if stack.opensearch_url:
            os.environ["OPENSEARCH_URL"] = stack.opensearch_url
            os.environ.setdefault("DOCS_SEARCH_NUDGE", "notify")  # wakes the sync loop
        if stack.s3_endpoint:
            os.environ["DOCS_AWS_ENDPOINT_URL"] = stack.s3_endpoint
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        from chalicelib.adapters.postgres import migrate
        from chalicelib.config import Settings

        # migrations run as DATABASE_URL's login (the owner); the API, the sync
        # and the CLI's other commands connect as the runtime login
        runtime = Settings()
        applied = migrate(stack.database_url, runtime_user=runtime.runtime_user)
        print(json.dumps({"level": "INFO", "msg": "migrated", "applied": applied}), flush=True)
        reason = services.postgres_reachable(runtime.runtime_database_url)
        if reason:
            raise services.ServiceUnavailable(
                f"the runtime login {runtime.runtime_user!r} cannot connect ({reason}); "
                "set DOCS_DB_RUNTIME_URL (docs/database-roles.md)"
            )
        if stack.s3_endpoint:  # bucket + ObjectCreated → SQS → process_upload poller
            from chalicelib.config import Settings
            from devtools import s3_stack

            bucket = Settings().content_bucket
            stack._stoppers.append(s3_stack.start(stack.s3_endpoint, bucket))  # stopped by stop()
        if stack.opensearch_url:
            stack._stoppers.append(_start_sync_process())
        serve(args.host, args.port, args.workers)
    finally:
        stack.stop()
    return 0


def _start_sync_process() -> Any:
    """The search sync loop in its own process (like its own Lambda function)."""
    import multiprocessing

    from devtools import sync_worker

    proc = multiprocessing.get_context("fork").Process(target=sync_worker.main, daemon=True)
    proc.start()

    def stop() -> None:
        proc.terminate()
        proc.join(timeout=10)

    return stop


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    pct = 100 * done // total if total else 100
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({pct}%)")
    sys.stderr.flush()


def cmd_reindex(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap

    report = bootstrap.container().search_sync.reindex(
        batch=args.batch, progress=_progress, drop_old_now=args.drop_old_now
    )
    sys.stderr.write("\n")
    print(json.dumps({**report.__dict__, "failed": report.failed[:100]}))
    return 0 if not report.failed else 1


def cmd_sync(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap
    from devtools import sync_worker

    if args.once:
        sync = bootstrap.container().search_sync
        print(json.dumps({**sync.drain().as_dict(), **sync.stats()}))
        return 0
    sync_worker.main()
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from chalicelib import bootstrap

    c = bootstrap.container()
    if args.requeue:
        print(json.dumps({"requeued": c.outbox.requeue_dead_letters(args.org)}))
        return 0
    for row in c.outbox.dead_letters(args.org):
        print(json.dumps(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cli")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the API and its local stack")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=int(os.environ.get("DOCS_WORKERS", "4")))
    p.add_argument("--embedded", action="store_true", help="always start embedded PG and Redis")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("token", help="print a dev token signed with the local secret")
    p.add_argument("--org", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--roles", nargs="+", default=["reader"])
    p.add_argument("--ttl", type=int, default=3600)
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

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
