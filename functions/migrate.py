"""Apply pending SQL migrations: invoke once after each deploy (or from a pipeline).

    aws lambda invoke --function-name <MigrateFunctionName> out.json

Safe to invoke twice or concurrently: the runner takes an advisory lock and
records every file it applied (see chalicelib/adapters/postgres/migrations.py).
With DOCS_DB_IAM_AUTH the connection uses a fresh RDS IAM token.

This is the only function that connects as the migration login (DATABASE_URL:
it acts as the owner role docs_owner); it grants docs_app to the runtime login
every other function uses (DOCS_DB_RUNTIME_URL), see docs/database-roles.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.adapters.postgres import PostgresUnitOfWork, migrate
from chalicelib.config import Settings, get_settings
from chalicelib.observability import lambda_handler, logger


def database_url(settings: Settings) -> str:
    """The URL to migrate with: the migration login's, plus an IAM token when asked."""
    url = settings.database_url
    if not settings.db_iam_auth:
        return url
    parts = urlsplit(url)
    if not parts.username or not parts.hostname:
        raise ValueError("DATABASE_URL needs a user and a host for RDS IAM auth.")
    token = PostgresUnitOfWork(settings).iam_token(url)  # boto3, imported lazily
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{parts.username}:{quote(token, safe='')}@{host}:{parts.port or 5432}"
    params = dict(parse_qsl(parts.query))
    for key, value in settings.db_ssl_params().items():  # IAM auth needs TLS
        params.setdefault(key, value)
    query = urlencode(params)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    applied = migrate(database_url(settings), runtime_user=settings.runtime_user)
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
