"""Command line: ``serve`` the local stack, mint dev ``token``s, ``migrate``.

python -m chalicelib.cli serve --host 127.0.0.1 --port 8000 [--embedded] [--workers 4]
python -m chalicelib.cli token --org acme --sub alice --roles writer
python -m chalicelib.cli migrate
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

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

    applied = migrate(args.database_url or get_settings().database_url)
    print(json.dumps({"applied": applied}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from chalicelib.local import services
    from chalicelib.local.server import serve

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
        if stack.s3_endpoint:
            os.environ["DOCS_AWS_ENDPOINT_URL"] = stack.s3_endpoint
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        from chalicelib.adapters.postgres import migrate

        applied = migrate(stack.database_url)
        print(json.dumps({"level": "INFO", "msg": "migrated", "applied": applied}), flush=True)
        if stack.s3_endpoint:  # bucket + ObjectCreated → SQS → process_upload poller
            from chalicelib.config import Settings
            from chalicelib.local import s3_stack

            bucket = Settings().content_bucket
            stack._stoppers.append(s3_stack.start(stack.s3_endpoint, bucket))  # stopped by stop()
        serve(args.host, args.port, args.workers)
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli")
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
    p.add_argument("--database-url")
    p.set_defaults(func=cmd_migrate)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
