"""What each Lambda function's code calls, in one place: the AWS APIs (IAM actions on
which template resource), the public hosts and the services inside the VPC.

Nothing here runs in a function.  The template tests read it
(tests/unit/test_template_paths.py): every call has a network path from the
function (a VPC endpoint of the right kind, a NAT route, the security groups of the
VPC service, or no VPC) and an IAM grant on exactly that resource, and every service
the handler's code can reach (its imports and the container members it uses) is
declared here, and nothing else.  docs/deploy.md ("Network paths") explains the
choices per function.

A call's ``service`` is the VPC endpoint service name (``s3``, ``sqs``, ``kms``,
``secretsmanager``, ``lambda``, ``codedeploy``, ``appconfigdata``), or
``execute-api`` (the WebSocket management API, which no endpoint serves),
``jwks`` (the token issuer's keys, a public host), or a service inside the VPC:
``rds`` (RDS Proxy), ``elasticache``, ``es`` (the search domain); ``ses`` (the SES
API, NAT only: its one VPC endpoint, ``email-smtp``, serves SMTP).  ``resource`` is
the policy's Resource as the template
writes it (``X.Arn`` for ``!GetAtt X.Arn``, ``X`` for ``!Ref X``, a ``!Sub`` text),
a glob.  ``via`` is the module that makes the call, or one of ``PLATFORM`` (the
Lambda service, with the function's role: its DLQ, its SQS event source) and
``BY_S3`` (S3 calls KMS with the caller's rights for SSE-KMS objects and presigned
URLs): those two need no network path from the function.
"""

from __future__ import annotations

from dataclasses import dataclass

PLATFORM = "platform"
BY_S3 = "s3-sse-kms"


@dataclass(frozen=True)
class Call:
    """One kind of request a function makes."""

    service: str
    actions: tuple[str, ...] = ()
    resource: str = ""
    via: str = ""
    # request context the granting statement may require (condition key, value)
    condition: tuple[tuple[str, str], ...] = ()


# The modules that talk to a service, and the service (the code check maps what a
# handler reaches to these).
ADAPTERS: dict[str, str] = {
    "chalicelib.adapters.postgres": "rds",
    "chalicelib.adapters.redis": "elasticache",
    "chalicelib.adapters.opensearch": "es",
    "chalicelib.adapters.s3": "s3",
    "chalicelib.adapters.sqs_nudge": "sqs",
    "chalicelib.adapters.pii": "kms",
    "chalicelib.adapters.apigw_connections": "execute-api",
    "chalicelib.secrets": "secretsmanager",
    "chalicelib.api.oidc": "jwks",
    "chalicelib.adapters.ses": "ses",
    "chalicelib.adapters.feature_flags": "appconfigdata",
    "chalicelib.adapters.webhook_http": "webhooks",
}

_PII_CONTEXT = (("kms:EncryptionContext:purpose", "docs-pii-data-key"),)
_RDS_USER = "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ProxyId}/"
_DOMAIN = "${DomainArn}/*"
_CONTENT = "${ContentBucket.Arn}/content/*"
_WS = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RealtimeApi}/${Stage}"
_SES = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/"
_PG = "chalicelib.adapters.postgres"
_S3 = "chalicelib.adapters.s3"
_NUDGE = "chalicelib.adapters.sqs_nudge"
_SECRETS = "chalicelib.secrets"
_WS_API = "chalicelib.adapters.apigw_connections"
_FLAGS_PROFILE = (
    "arn:${AWS::Partition}:appconfig:${AWS::Region}:${AWS::AccountId}:application/"
    "${FeatureFlagsApplication}/environment/${FeatureFlagsEnvironment}/configuration/"
    "${FeatureFlagsProfile}"
)

DLQ = Call("sqs", ("sqs:SendMessage",), "FunctionFailuresDLQ.Arn", PLATFORM)
DB = Call("rds", ("rds-db:connect",), _RDS_USER + "${DbUser}", _PG)
CACHE = Call("elasticache", via="chalicelib.adapters.redis")
CACHE_SECRET = Call(
    "secretsmanager", ("secretsmanager:GetSecretValue",), "CacheUserSecret", _SECRETS
)
PAGE_SECRET = Call(
    "secretsmanager", ("secretsmanager:GetSecretValue",), "PageTokenSecret", _SECRETS
)
SEARCH_NUDGE = Call("sqs", ("sqs:SendMessage",), "SearchNudgeQueue.Arn", _NUDGE)
REALTIME_NUDGE = Call("sqs", ("sqs:SendMessage",), "RealtimeNudgeQueue.Arn", _NUDGE)
SEARCH_READ = ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost")
SEARCH_WRITE = (*SEARCH_READ, "es:ESHttpPut", "es:ESHttpDelete")
# feature flags (docs/feature-flags.md): FeatureFlagsReadPolicy
FLAGS = Call(
    "appconfigdata",
    ("appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"),
    _FLAGS_PROFILE,
    "chalicelib.adapters.feature_flags",
)
POLL = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
CONTENT_RW = ("s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion")

_WORKER = (DLQ, DB, CACHE, CACHE_SECRET)  # every function built on the container
_SYNC = (*_WORKER, Call("es", SEARCH_WRITE, _DOMAIN, "chalicelib.adapters.opensearch"))
_UPLOADS = (
    *_WORKER,
    Call("s3", CONTENT_RW, _CONTENT, _S3),
    Call("kms", ("kms:Decrypt",), "ContentKey.Arn", BY_S3),
    SEARCH_NUDGE,
    REALTIME_NUDGE,
)

# Each function's calls, by the handler the template names.
CALLS: dict[str, tuple[Call, ...]] = {
    "app.handler": (
        *_WORKER,
        PAGE_SECRET,
        FLAGS,
        SEARCH_NUDGE,
        REALTIME_NUDGE,
        Call("es", SEARCH_READ, _DOMAIN, "chalicelib.adapters.opensearch"),
        # presigned uploads and downloads act with the API's rights (SSE-KMS by S3)
        Call("s3", ("s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"), _CONTENT, _S3),
        Call("kms", ("kms:GenerateDataKey", "kms:Decrypt"), "ContentKey.Arn", BY_S3),
        Call("s3", ("s3:GetObject",), "${ExportsBucket.Arn}/exports/*", _S3),
        # personal-data fields: data keys under their purpose, and the blind-index key
        Call(
            "kms",
            ("kms:GenerateDataKey", "kms:Decrypt"),
            "ContentKey.Arn",
            "chalicelib.adapters.pii",
            _PII_CONTEXT,
        ),
        Call("secretsmanager", ("secretsmanager:GetSecretValue",), "PiiBlindIndexSecret", _SECRETS),
    ),
    "functions.migrate.handler": (
        DLQ,
        Call("rds", ("rds-db:connect",), _RDS_USER + "${DbMigrationUser}", _PG),
        CACHE_SECRET,  # the settings read the cache password at start-up
    ),
    "functions.deploy_hook.handler": (
        DLQ,
        # the versions and the alias of every function it deploys (and MigrateFunction's
        # new version, which it runs first)
        Call("lambda", ("lambda:InvokeFunction",), "${*Function.Arn}:*", "functions.deploy_hook"),
        Call(
            "codedeploy",
            (
                "codedeploy:ListDeploymentTargets",
                "codedeploy:GetDeploymentTarget",
                "codedeploy:PutLifecycleEventHookExecutionStatus",
            ),
            "*:deploymentgroup:${ServerlessDeploymentApplication}/*",
            "functions.deploy_hook",
        ),
    ),
    # the API's Lambda authorizer: verifies tokens with the issuer's public JWKS (HTTPS,
    # no AWS API, no database)
    "functions.authorizer.handler": (DLQ,),
    # the synthetic canary: the smoke suite against the API's alias
    "functions.canary.handler": (
        DLQ,
        Call("lambda", ("lambda:InvokeFunction",), "${ApiFunction.Arn}:live", "functions.canary"),
    ),
    "functions.process_upload.handler": (
        *_UPLOADS,
        Call("sqs", POLL, "ContentEventsQueue.Arn", PLATFORM),
    ),
    "functions.process_upload.expire_handler": (
        *_UPLOADS,
        Call("s3", ("s3:ListBucket",), "ContentBucket.Arn", _S3),  # a missing object: 404
    ),
    "functions.sync_search.handler": (*_SYNC, Call("sqs", POLL, "SearchNudgeQueue.Arn", PLATFORM)),
    "functions.sync_search.sweep_handler": _SYNC,
    "functions.sync_search.reindex_handler": _SYNC,
    "functions.realtime.ws_handler": (
        *_WORKER,
        PAGE_SECRET,
        FLAGS,  # $connect asks the realtime flag
        Call("jwks", via="chalicelib.api.oidc"),  # $connect verifies the token itself
        Call(
            "execute-api", ("execute-api:ManageConnections",), _WS + "/POST/@connections/*", _WS_API
        ),
        Call(  # a frame after the token ended: delete_connection
            "execute-api",
            ("execute-api:ManageConnections",),
            _WS + "/DELETE/@connections/*",
            _WS_API,
        ),
    ),
    "functions.realtime.fanout_handler": (
        *_WORKER,
        PAGE_SECRET,
        Call(
            "execute-api", ("execute-api:ManageConnections",), _WS + "/POST/@connections/*", _WS_API
        ),
        Call(
            "execute-api",
            ("execute-api:ManageConnections",),
            _WS + "/DELETE/@connections/*",
            _WS_API,
        ),
        Call("sqs", POLL, "RealtimeNudgeQueue.Arn", PLATFORM),
    ),
    "functions.audit_export.handler": (
        *_WORKER,
        Call("s3", ("s3:PutObject", "s3:GetObject"), "${AuditBucket.Arn}/audit/*", _S3),
        Call("s3", ("s3:ListBucket",), "AuditBucket.Arn", _S3),
        Call("kms", ("kms:GenerateDataKey", "kms:Decrypt"), "AuditKey.Arn", BY_S3),
    ),
    "functions.export_worker.handler": (
        *_WORKER,
        Call("s3", ("s3:PutObject",), "${ExportsBucket.Arn}/exports/*", _S3),
        Call("kms", ("kms:GenerateDataKey",), "ContentKey.Arn", BY_S3),
        # the archive holds the subject's personal-data fields in clear
        Call("kms", ("kms:Decrypt",), "ContentKey.Arn", "chalicelib.adapters.pii", _PII_CONTEXT),
    ),
    "functions.purge.handler": (
        *_WORKER,
        SEARCH_NUDGE,
        Call("s3", ("s3:DeleteObject", "s3:DeleteObjectVersion"), _CONTENT, _S3),
        Call(
            "s3",
            ("s3:ListBucketVersions",),
            "ContentBucket.Arn",
            _S3,
            (("s3:prefix", "content/*"),),
        ),
    ),
    # share notifications: opens the sealed addresses, sends from the sender's identity
    # (verified as the address or as its domain) through a NAT gateway
    "functions.notify.handler": (
        *_WORKER,
        FLAGS,  # the share_notifications flag
        Call("kms", ("kms:Decrypt",), "ContentKey.Arn", "chalicelib.adapters.pii", _PII_CONTEXT),
        Call("ses", ("ses:SendEmail",), _SES + "${NotificationSender}", "chalicelib.adapters.ses"),
        Call("ses", ("ses:SendEmail",), _SES + "${Domain}", "chalicelib.adapters.ses"),
    ),
    # webhook receivers: public hosts on HTTPS, through the NAT gateway (docs/webhooks.md)
    "functions.deliver_webhooks.handler": (
        FLAGS,  # the webhooks flag
        *_WORKER,
        PAGE_SECRET,
        Call("webhooks", via="chalicelib.adapters.webhook_http"),
    ),
    # the Cognito trigger (inline code): it returns the event it was given
    "index.handler": (DLQ,),
}

# Wide grants AWS requires, and SAM attaches: each named, none other allowed.
MANAGED_POLICIES: dict[str, str] = {
    "service-role/AWSLambdaBasicExecutionRole": "logs (SAM attaches it to every role)",
    "AWSXrayWriteOnlyAccess": "Tracing: Active; X-Ray has no resource-level permissions",
    "service-role/AWSLambdaVPCAccessExecutionRole": "the ENIs of a function in a VPC (EC2 needs *)",
}
