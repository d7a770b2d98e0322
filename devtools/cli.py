"""Command line: ``serve`` the local stack, mint dev ``token``s, ``migrate``, search ops.

python -m devtools.cli serve [--port 8000] [--embedded] [--workers 4] [--detach]
python -m devtools.cli stop                           # stop the server serve --detach started
python -m devtools.cli token --org acme --sub alice --roles writer
python -m devtools.cli token --org acme --client sync-bot --scopes "docs/read docs/write"
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
import sys
from typing import Any

from devtools.cli_support import (
    CliError,
    dev_secret,
    local_pii_defaults,
    say,
    use_local_stack,
)
from devtools.serving import cmd_serve, cmd_stop

__all__ = ["CliError", "dev_secret", "local_pii_defaults", "main", "use_local_stack"]


# ------------------------------------------------------------------ token, migrate
def cmd_token(args: argparse.Namespace) -> int:
    from chalicelib.api.auth import mint_machine_token, mint_token
    from chalicelib.config import Settings
    from chalicelib.domain.principal import ROLE_RANK

    if (args.client is None) == (args.sub is None):
        raise CliError("give --sub (a user's token) or --client (a machine client's token)")
    secret = dev_secret(create=False)
    if not secret:
        raise CliError(
            "no dev secret: set DOCS_JWT_SECRET, or run 'serve' once"
            " (it creates var/dev-jwt-secret)"
        )
    settings = Settings(jwt_secret=secret)
    if args.client is not None:
        return _machine_token(args, settings, mint_machine_token)
    roles = [r for part in args.roles for r in part.split(",") if r]
    unknown = sorted(set(roles) - set(ROLE_RANK))
    if unknown:
        raise CliError(
            f"unknown role {', '.join(map(repr, unknown))}: the service knows "
            f"{', '.join(ROLE_RANK)} (a token with another role grants nothing)"
        )
    print(mint_token(settings, org=args.org, sub=args.sub, roles=roles, ttl_s=args.ttl))
    return 0


def _machine_token(args: argparse.Namespace, settings: Any, mint: Any) -> int:
    """A client-credentials token for ``--client``, registered for ``--org`` first
    (the token itself names no org: the server takes it from the registration)."""
    from chalicelib.domain.principal import SCOPE_ROLES
    from devtools import machine_clients

    scopes = [s for part in args.scopes for s in part.replace(",", " ").split()]
    known = {f"{settings.oauth_resource_server}/{name}" for name in SCOPE_ROLES}
    if not set(scopes) & known:
        raise CliError(
            f"--scopes needs one of {', '.join(sorted(known))} (a token without one grants nothing)"
        )
    try:
        if machine_clients.register(args.client, args.org):
            say(f"registered machine client {args.client!r} for org {args.org!r} "
                f"({machine_clients.registrations_file()})")  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(mint(settings, client_id=args.client, scopes=scopes, ttl_s=args.ttl))
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
        say("no dead letters" + (f" for org {args.org}" if args.org else "")
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
        say("no audit chain" + (f" for org {args.org}" if args.org else "") + ": nothing to verify")
    return 0 if all(r.ok for r in reports) else 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Export the closed days not exported yet (what functions/audit_export.py runs)."""
    from chalicelib import bootstrap

    use_local_stack()
    for manifest in bootstrap.container().audit.export_closed_periods(days=args.days):
        print(json.dumps(manifest))
    return 0


def cmd_audit_pseudonym(args: argparse.Namespace) -> int:
    """A user's pseudonym and the org's key: the Athena queries' parameters."""
    from chalicelib import bootstrap

    use_local_stack()
    found = bootstrap.container().audit.pseudonym(args.org, args.user)
    if found is None:
        say(f"user {args.user} of org {args.org} has no pseudonym (never audited, or erased)")
        return 1
    print(json.dumps(found))
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
def _pseudonym_parser(audit_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = audit_sub.add_parser(
        "pseudonym", help="a user's audit pseudonym and the org's key (for the Athena queries)"
    )
    p.add_argument("--org", required=True)
    p.add_argument("--user", required=True)
    p.set_defaults(func=cmd_audit_pseudonym)


def _token_parser(sub: Any) -> None:
    p = sub.add_parser(
        "token",
        help="print a dev token signed with the local secret",
        description="Print a dev token signed with the local secret. The server accepts "
        "it for --ttl seconds, plus DOCS_JWT_LEEWAY_S (30 s) for clocks that disagree.",
    )
    p.add_argument("--org", required=True, help="the tenant")
    p.add_argument("--sub", help="the user id (a user's token)")
    p.add_argument(
        "--client",
        help="a machine client's id: a client-credentials token, the client registered for "
        "--org in var/machine-clients.json (docs/security.md, 'Machine clients')",
    )
    p.add_argument(
        "--scopes",
        nargs="+",
        default=["docs/read"],
        help="with --client: docs/read, docs/write, docs/admin (%(default)s)",
    )
    p.add_argument(
        "--roles", nargs="+", default=["reader"], help="reader, writer, admin (%(default)s)"
    )
    p.add_argument("--ttl", type=int, default=3600, help="seconds the token lives (%(default)s)")
    p.set_defaults(func=cmd_token)


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

    _token_parser(sub)

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
    _pseudonym_parser(audit_sub)
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
        say(f"error: {exc}")
    except SystemExit as exc:  # ServiceUnavailable, PortUnavailable, ConsumerConflict
        if not isinstance(exc.code, str):
            raise
        say(f"error: {exc.code}")
    except psycopg.OperationalError as exc:
        say(f"error: PostgreSQL: {str(exc).strip().splitlines()[0]}; {_hint()}")
    except DomainError as exc:
        say(f"error: {exc}; {_hint()}")
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
