"""Configuration: every knob is an environment variable with a sane default.

Read once per process (``get_settings`` is cached) so a Lambda execution
environment pays for it at cold start only.  Names are prefixed ``DOCS_``
except the conventional ``DATABASE_URL``, ``REDIS_URL`` and ``OPENSEARCH_URL``.

``Settings`` parses the flat environment (one field per variable, so the names
stay what docs/configuration.md lists); each concern reads its own frozen group
(``settings.documents``, ``.content``, ``.search``, ``.realtime``,
``.personal_data``, ``.purge``, ``.audit``, ``.access_review``, ``.rate_limits``), and the
composition root hands each service its group.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chalicelib.config_webhooks import WebhookEnv
from chalicelib.domain.content.policy import DEFAULT_ALLOWED_TYPES, ContentPolicy
from chalicelib.domain.model import Limits
from chalicelib.settings_groups import (
    AccessReviewSettings,
    AuditSettings,
    ConsentSettings,
    ContentSettings,
    DocumentSettings,
    PersonalDataSettings,
    PurgeSettings,
    RateLimitSettings,
    RealtimeSettings,
    SearchSettings,
)

# The CAs a verify-full connection to RDS Proxy (Amazon Trust Services roots: the
# proxy presents an ACM certificate) or to RDS itself (the RDS global bundle) trusts;
# built by scripts/rds_ca_bundle.py, shipped with the code (docs/deploy.md).
DEFAULT_SSLROOTCERT = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"
_VERIFYING_SSLMODES = ("verify-ca", "verify-full")


class Settings(WebhookEnv, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCS_", extra="ignore")

    # --- PostgreSQL (RDS Proxy in AWS) -------------------------------------
    # Two logins (docs/database-roles.md).  DATABASE_URL: the database and the
    # login migrations run as (it becomes the owner role docs_owner; locally
    # the admin ``postgres``).  Everything else (API, workers, CLI) connects as
    # the runtime login, which owns nothing and can only act as ``docs_app``:
    # DOCS_DB_RUNTIME_URL, else DATABASE_URL with the user DOCS_DB_RUNTIME_USER
    # and no password (trust/IAM auth).
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/test",
        validation_alias=AliasChoices("DATABASE_URL", "DOCS_DATABASE_URL"),
    )
    db_runtime_url: str | None = None
    db_runtime_user: str = "docs_runtime"
    db_schema: str = "public"
    db_pool_min: int = 1
    db_pool_max: int = 4
    db_bulk_pool_max: int = 2  # batch writes get their own pool (bulkhead)
    db_connect_timeout_s: float = 3.0
    db_statement_timeout_ms: int = 5000
    # IAM auth against RDS Proxy: when set, a fresh token is generated per connection.
    db_iam_auth: bool = False
    db_sslmode: str | None = None
    # CA bundle for sslmode verify-ca/verify-full (default: DEFAULT_SSLROOTCERT)
    db_sslrootcert: str | None = None
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    # --- Redis (ElastiCache in AWS) ----------------------------------------
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "DOCS_REDIS_URL"),
    )
    # In AWS: the ARN of the Secrets Manager secret holding the cache user's password
    # (a JSON {"password": ...} or the bare string); REDIS_URL then carries no password
    redis_auth_secret_arn: str | None = None
    # the start of every Redis key; the database's own id follows it (adapters/redis/
    # namespace.py), which is why it may not hold "@"
    redis_key_prefix: str = Field(default="", pattern=r"^[^@]*$")
    redis_socket_timeout_s: float = 0.25
    redis_connect_timeout_s: float = 0.25
    cache_enabled: bool = True
    cache_doc_ttl_s: int = 300
    cache_list_ttl_s: int = 30
    breaker_failure_threshold: int = 5
    breaker_reset_s: float = 5.0
    cache_repair_interval_s: float = 1.0

    # --- Rate limits: per principal token bucket (requests/s, burst) by role ---
    rate_limit_enabled: bool = True
    rate_limit_reader: tuple[float, int] = (100.0, 200)
    rate_limit_writer: tuple[float, int] = (100.0, 200)
    rate_limit_admin: tuple[float, int] = (200.0, 400)

    # --- Auth ---------------------------------------------------------------
    jwt_secret: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "docs-local"
    jwt_audience: str = "docs-api"
    jwt_leeway_s: int = 30
    # Behind API Gateway the authorizer has verified the token already; trust
    # the claims it puts in the request context instead of verifying again.
    trust_authorizer_claims: bool = False
    # Machine clients (OAuth2 client credentials; docs/security.md "Machine clients"):
    # DOCS_MACHINE_CLIENTS registers client ids, "client_id=org" comma-separated; a
    # registration is the only source of a machine client's org
    machine_clients: Annotated[tuple[str, ...], NoDecode] = ()
    # a JSON file of more registrations, re-read when it changes (the local server:
    # var/machine-clients.json, written by ``devtools.cli token --client``)
    machine_clients_file: str | None = None
    # the resource server whose scopes (<id>/read, <id>/write, <id>/admin) map to roles
    oauth_resource_server: str = Field(default="docs", pattern=r"^\S+$")

    # --- HTTP contract --------------------------------------------------------
    max_body_bytes: int = 1024 * 1024
    # DOCS_CORS_ORIGINS: the browser origins (scheme://host[:port]) allowed to call
    # the API and open its WebSocket, comma-separated; none by default
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    max_json_depth: int = 32
    max_patch_ops: int = Field(default=1000, ge=1)  # operations in one JSON Patch
    # a token may live at most this long (exp - iat; exp - now without iat)
    jwt_max_lifetime_s: int = Field(default=24 * 3600, ge=60)
    page_token_secret: str = "local-page-token-secret"  # noqa: S105 - overridden in AWS
    # In AWS: the ARN of a Secrets Manager secret holding page_token_secret, read at
    # start-up (chalicelib/secrets.py); the plain DOCS_PAGE_TOKEN_SECRET is for local use.
    page_token_secret_arn: str | None = None
    delete_retention_days: int = 30

    # --- Large content (S3; see docs/content.md) -------------------------------
    aws_endpoint_url: str | None = None  # local moto server; unset in AWS
    content_bucket: str = "docs-content-local"
    content_max_bytes: int = 5 * 1024**3
    content_upload_expiry_s: int = Field(default=900, ge=60, le=900)
    content_download_expiry_s: int = Field(default=60, ge=1, le=3600)
    content_allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    content_text_max_chars: int = 1_000_000  # extracted text kept for search
    content_pdf_spool_max_bytes: int = 256 * 1024**2  # PDFs are spooled to /tmp to parse
    content_chunk_bytes: int = 1024 * 1024

    # --- Search (OpenSearch; see docs/search.md) --------------------------------
    opensearch_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENSEARCH_URL", "DOCS_OPENSEARCH_URL")
    )
    opensearch_sigv4: bool = False  # sign requests (Amazon OpenSearch Service, IAM)
    opensearch_timeout_s: float = 5.0
    search_alias: str = "documents"  # indexes are "{alias}-v{N}" behind this alias
    search_shards: int = 1
    search_replicas: int = 0
    search_batch_size: int = 200  # outbox rows claimed per consumer batch
    search_bulk_max_bytes: int = 5 * 1024 * 1024  # one bulk request's size
    search_max_attempts: int = 8  # then the row goes to search_dead_letters
    search_retry_base_s: float = 1.0  # backoff: base * 2^attempts, full jitter, capped
    search_retry_cap_s: float = 300.0
    search_body_max_chars: int = 200_000  # text taken from a body / content per document
    search_reindex_grace_s: int = 3600  # the old index is dropped this long after a swap
    # How writes wake the consumer: "none" (the scheduled sweep finds them),
    # "notify" (PostgreSQL NOTIFY at commit; the local server), "sqs" (FIFO nudge queue).
    search_nudge: str = "none"
    search_nudge_queue_url: str | None = None
    changes_longpoll_max_s: int = 20  # API Gateway stops waiting at 29 s
    # processed outbox rows older than this are pruned by the sweep; a changes-feed
    # cursor from before the pruned range gets 410 Gone
    outbox_retention_days: int = Field(default=30, ge=1)

    # --- Fault injection (tests only; 0 in any real deployment) ---------------
    fault_fill_delay_ms: int = 0  # sleep between the PostgreSQL read and the cache fill
    fault_sync_pause_ms: int = 0  # sleep after OpenSearch acknowledged a batch, before marking it

    # --- OIDC: the JWKS of DOCS_JWT_JWKS_URL (chalicelib/api/oidc.py) --------
    jwt_jwks_ttl_s: int = Field(default=300, ge=1)  # a fetched key set is used this long
    # an unknown ``kid`` refetches the set at most this often (no refresh storm)
    jwt_jwks_min_refresh_s: float = Field(default=30.0, ge=0)
    jwt_jwks_timeout_s: float = Field(default=2.0, gt=0)
    # --- Audit trail and personal data (docs/compliance.md) ------
    # the Object Lock bucket the scheduled export writes closed periods to
    audit_bucket: str = "docs-audit-local"
    audit_export_prefix: str = "audit"
    audit_export_days: int = Field(default=3, ge=1)  # closed days looked at per run
    # GET /access-review flags a grant stale past this many days without audited use
    access_review_stale_days: int = Field(default=90, ge=1)
    # personal-data export archives (POST /me/export); presigned URL lifetime
    export_bucket: str = "docs-exports-local"
    export_url_expiry_s: int = Field(default=300, ge=1, le=3600)
    export_batch: int = Field(default=10, ge=1)  # jobs per worker run
    # --- Consent records (docs/compliance.md, "Consent records") ---------------
    # DOCS_CONSENT_PURPOSES: what a user may consent to, comma-separated
    consent_purposes: Annotated[tuple[str, ...], NoDecode] = ("notifications", "analytics")
    # the privacy policy in force: recorded with every change of consent
    consent_policy_version: str = Field(default="1", min_length=1, max_length=64)
    # --- Share notifications: the SES sender identity ("": off), one e-mail per
    # document and recipient per window, the app URL links start with
    notify_sender: str = ""
    notify_window_s: int = Field(default=3600, ge=1)
    notify_link_base: str = ""
    # --- Personal data and purge (docs/compliance.md) --------------------
    # DOCS_PII_FIELDS: metadata keys holding personal data, comma-separated; their
    # values are stored encrypted (envelopes) and searchable by exact match only
    pii_fields: Annotated[tuple[str, ...], NoDecode] = ()
    # master keys: KMS in AWS (a key ARN or alias) ...
    pii_kms_key_id: str | None = None
    pii_kms_endpoint_url: str | None = None  # tests (moto); unset in AWS
    # ... or local keys "kid:base64key,..." (32-byte keys, the first one active);
    # the local stack sets a dev default, nothing else does
    pii_local_keys: str | None = None
    # the blind-index (HMAC) key, base64 or a 32+ character string; in AWS its
    # Secrets Manager ARN (read at start-up)
    pii_blind_key: str | None = None
    pii_blind_key_arn: str | None = None
    pii_data_key_max_uses: int = Field(default=10_000, ge=1)  # values per cached data key
    pii_data_key_max_age_s: float = Field(default=300.0, gt=0)  # seconds per cached data key
    # the scheduled purge: documents deleted longer than delete_retention_days ago
    purge_batch_size: int = Field(default=100, ge=1, le=10_000)  # documents per run

    @field_validator("pii_fields", "consent_purposes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("machine_clients", mode="before")
    @classmethod
    def _machine_clients(cls, value: object) -> object:
        """``client_id=org`` pairs; a pair without both halves is a setup error."""
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, list | tuple):
            return value
        pairs = tuple(p for p in (str(p).strip() for p in parts) if p)
        for pair in pairs:
            client_id, _, org = pair.partition("=")
            if not client_id.strip() or not org.strip():
                raise ValueError(f"DOCS_MACHINE_CLIENTS: {pair!r} is not 'client_id=org'")
        return pairs

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        """Origins compare case-insensitively, without a trailing slash."""
        parts = value.split(",") if isinstance(value, str) else value
        if isinstance(parts, list | tuple):
            return tuple(o for o in (str(p).strip().rstrip("/").lower() for p in parts) if o)
        return value

    # --- Real-time updates (docs/realtime.md) ----------------------
    realtime_enabled: bool = True  # the local server's /realtime and SSE feed
    realtime_max_subscriptions: int = Field(default=100, ge=1)  # per connection
    realtime_queue_frames: int = Field(default=256, ge=1)  # per connection, locally; then 4008
    realtime_connection_ttl_s: int = Field(default=7200, ge=60)  # API Gateway's 2 h maximum
    realtime_batch_size: int = Field(default=500, ge=1)  # outbox rows per fan-out batch
    realtime_parallel_posts: int = Field(default=8, ge=1)
    realtime_post_attempts: int = Field(default=4, ge=1)  # then the connection is closed
    realtime_catch_up_limit: int = Field(default=100, ge=1)  # changes replayed on subscribe
    realtime_consumer: str = "realtime"  # the fan-out's cursor (one per consumer name)
    realtime_heartbeat_s: float = Field(default=15.0, gt=0)  # SSE comment lines
    # AWS: the WebSocket API's management endpoint (https://{api-id}.execute-api.{region}
    # .amazonaws.com/{stage}) and the nudge queue writes wake the fan-out with
    realtime_endpoint_url: str | None = None
    realtime_nudge_queue_url: str | None = None

    # --- Feature flags (docs/feature-flags.md): AWS AppConfig ("application/environment/
    # profile") or a JSON file (its path; empty: the committed config/feature-flags.json)
    feature_flags_store: Literal["appconfig", "file"] = "file"
    feature_flags_source: str = ""
    feature_flags_max_age_s: float = Field(default=60.0, gt=0)  # documents cached this long

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        if self.page_token_secret_arn:
            from chalicelib.secrets import get_secret

            self.page_token_secret = get_secret(self.page_token_secret_arn)
        if self.redis_auth_secret_arn:
            self.redis_url = with_redis_password(self.redis_url, self.redis_auth_secret_arn)
        return self

    # --- the groups each concern reads -----------------------------------------
    @property
    def documents(self) -> DocumentSettings:
        limits = Limits(
            max_bytes=self.max_body_bytes,
            max_depth=self.max_json_depth,
            max_patch_ops=self.max_patch_ops,
        )
        return DocumentSettings(limits, timedelta(days=self.delete_retention_days))

    @property
    def content(self) -> ContentSettings:
        policy = ContentPolicy(
            max_bytes=self.content_max_bytes,
            allowed_types=self.content_allowed_types,
            text_max_chars=self.content_text_max_chars,
            pdf_spool_max_bytes=self.content_pdf_spool_max_bytes,
        )
        return ContentSettings(
            bucket=self.content_bucket,
            policy=policy,
            upload_expiry_s=self.content_upload_expiry_s,
            download_expiry_s=self.content_download_expiry_s,
            chunk_bytes=self.content_chunk_bytes,
        )

    @property
    def search(self) -> SearchSettings:
        return SearchSettings(
            batch_size=self.search_batch_size,
            max_attempts=self.search_max_attempts,
            retry_base_s=self.search_retry_base_s,
            retry_cap_s=self.search_retry_cap_s,
            body_max_chars=self.search_body_max_chars,
            reindex_grace=timedelta(seconds=self.search_reindex_grace_s),
            outbox_retention=timedelta(days=self.outbox_retention_days),
        )

    @property
    def realtime(self) -> RealtimeSettings:
        return RealtimeSettings(
            max_subscriptions=self.realtime_max_subscriptions,
            catch_up_limit=self.realtime_catch_up_limit,
            revocation_ttl_s=self.jwt_max_lifetime_s + self.jwt_leeway_s,
            connection_ttl_s=self.realtime_connection_ttl_s,
            consumer=self.realtime_consumer,
            batch_size=self.realtime_batch_size,
            post_attempts=self.realtime_post_attempts,
            parallel_posts=self.realtime_parallel_posts,
        )

    @property
    def personal_data(self) -> PersonalDataSettings:
        return PersonalDataSettings(
            export_bucket=self.export_bucket,
            export_url_expiry_s=self.export_url_expiry_s,
            export_batch=self.export_batch,
        )

    @property
    def consents(self) -> ConsentSettings:
        return ConsentSettings(self.consent_purposes, self.consent_policy_version)

    @property
    def purge(self) -> PurgeSettings:
        return PurgeSettings(timedelta(days=self.delete_retention_days), self.purge_batch_size)

    @property
    def audit(self) -> AuditSettings:
        return AuditSettings(self.audit_bucket, self.audit_export_prefix, self.audit_export_days)

    @property
    def access_review(self) -> AccessReviewSettings:
        return AccessReviewSettings(self.access_review_stale_days)

    @property
    def rate_limits(self) -> RateLimitSettings:
        if not self.rate_limit_enabled:
            return RateLimitSettings()
        return RateLimitSettings(
            {
                "reader": self.rate_limit_reader,
                "writer": self.rate_limit_writer,
                "admin": self.rate_limit_admin,
            }
        )

    def db_ssl_params(self) -> dict[str, str]:
        """libpq TLS parameters: ``sslmode`` (``require`` by default with IAM auth, which
        needs TLS) and, for the verifying modes, ``sslrootcert``, which must exist."""
        mode = self.db_sslmode or ("require" if self.db_iam_auth else None)
        if not mode:
            return {}
        params = {"sslmode": mode}
        if mode in _VERIFYING_SSLMODES:
            path = Path(self.db_sslrootcert or DEFAULT_SSLROOTCERT)
            if not path.is_file():
                raise RuntimeError(
                    f"DOCS_DB_SSLMODE={mode} needs a CA bundle, and {path} does not exist: "
                    "set DOCS_DB_SSLROOTCERT, or build chalicelib/certs/rds-ca-bundle.pem "
                    "(scripts/rds_ca_bundle.py, see docs/deploy.md)."
                )
            params["sslrootcert"] = str(path)
        return params

    @property
    def runtime_database_url(self) -> str:
        """The runtime login's connection string (see ``database_url`` above)."""
        return self.db_runtime_url or with_user(self.database_url, self.db_runtime_user)

    @property
    def runtime_user(self) -> str:
        """The runtime login's name (the migrations grant it ``docs_app``)."""
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(self.runtime_database_url).get("user") or self.db_runtime_user)


def with_user(conninfo: str, user: str) -> str:
    """``conninfo`` (URL or key=value) for another user, without a password."""
    if "://" not in conninfo:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(conninfo)
        params.pop("password", None)
        params["user"] = user
        return make_conninfo("", **params)
    parts = urlsplit(conninfo)
    host = parts.netloc.rpartition("@")[2]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k not in ("user", "password")]
    query = parts.query if len(kept) == len(pairs) else urlencode(kept, safe="/")
    netloc = f"{quote(user, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def with_redis_password(url: str, secret_arn: str) -> str:
    """``url`` with the password read from ``secret_arn`` (its user kept), so the
    password never sits in a function's environment."""
    import json

    from chalicelib.secrets import get_secret

    raw = get_secret(secret_arn)
    password = raw
    if raw.lstrip().startswith("{"):
        password = str(json.loads(raw)["password"])
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    hostport = f"{host}:{parts.port}" if parts.port else host
    netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
