"""A personal-data export written by the export worker *as deployed* holds the
subject's fields in clear (docs/security.md, "What the deployed functions may do").

The local stack gives every part one configuration, so a worker the template left
without the personal-data settings (or without ``kms:Decrypt``) still passed locally
and wrote sealed envelopes in AWS.  Here each function's configuration comes from
template.yaml: its environment (Globals merged with its own), with the template's
references resolved to local stand-ins (the KMS key in moto, the bucket in moto, the
database and Redis of the test run) and nothing else changed; the API seals the
fields under that configuration, the worker's handler runs under its own, and every
KMS and S3 call it made is checked against its role as SAM generates it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis

from chalicelib.config import Settings
from chalicelib.domain.principal import Principal
from functions.manifest import Call
from tests.conftest import REDIS_URL, create_database, delete_prefix, drop_database
from tests.unit.template_paths import canon
from tests.unit.test_template import (
    _env,
    _template,
    transformed,  # noqa: F401 - a fixture
)
from tests.unit.test_template_iam import _grants, _role_statements

pytestmark = pytest.mark.integration

PII_FIELDS = "email,phone"  # the PiiFields parameter of this deployment
EMAIL = "subject.secret@example.com"
# where the stack's infrastructure is, locally (never a DOCS_PII_* setting)
INFRASTRUCTURE = {
    "DOCS_DB_RUNTIME_URL",
    "DOCS_DB_IAM_AUTH",
    "DOCS_DB_SSLMODE",
    "REDIS_URL",
    "DOCS_REDIS_AUTH_SECRET_ARN",
    "OPENSEARCH_URL",
    "DOCS_OPENSEARCH_SIGV4",
    "DOCS_SEARCH_NUDGE",
    "DOCS_SEARCH_NUDGE_QUEUE_URL",
    "DOCS_REALTIME_NUDGE_QUEUE_URL",
}


class _Context:
    function_name = "ExportWorkerFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:export-worker"
    aws_request_id = "req-export"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[dict[str, str]]:
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")
    key = kms.create_key(Description="ContentKey")["KeyMetadata"]["Arn"]
    bucket = f"exports-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    db = create_database()
    prefix = f"t:{uuid.uuid4().hex[:8]}:"  # the stack's one prefix, as both functions get it
    yield {
        "endpoint": moto_endpoint, "ContentKey.Arn": key, "bucket": bucket, "db": db,
        "prefix": prefix,
    }  # fmt: skip
    drop_database(db)
    delete_prefix(redis.Redis.from_url(REDIS_URL), prefix)


def _deployed_settings(name: str, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``name``'s settings from its template environment: references resolved to the
    local stand-ins, the infrastructure pointed at the test run's."""
    import chalicelib.secrets

    local = {"ContentKey.Arn": aws["ContentKey.Arn"], "PiiFields": PII_FIELDS}
    env: dict[str, str] = {}
    for key, value in _env(_template(), name).items():
        if key in INFRASTRUCTURE:
            continue
        if isinstance(value, str):
            env[key] = value
        elif (ref := canon(value)[0]) in local:
            env[key] = local[ref]
        elif key.endswith("_BUCKET"):
            env[key] = aws["bucket"]
        elif key == "DOCS_MACHINE_CLIENTS":  # client_id=org pairs, the parameters' own
            env[key] = "client-id-test=org-test"
        else:  # an ARN read at start-up: any value stands in (get_secret is local)
            env[key] = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{ref}"
    env |= {
        "DATABASE_URL": aws["db"],
        "REDIS_URL": REDIS_URL,
        "DOCS_DB_IAM_AUTH": "false",
        "DOCS_AWS_ENDPOINT_URL": aws["endpoint"],
        "DOCS_PII_KMS_ENDPOINT_URL": aws["endpoint"],
        "DOCS_REDIS_KEY_PREFIX": aws["prefix"],
        "DOCS_RATE_LIMIT_ENABLED": "false",
    }
    for key in [f"DOCS_{k.upper()}" for k in Settings.model_fields] + [
        "DATABASE_URL",
        "REDIS_URL",
        "OPENSEARCH_URL",
    ]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(chalicelib.secrets, "get_secret", lambda arn, **_: f"{arn}-{'k' * 32}")
    return Settings()


def test_a_personal_data_export_is_in_clear_under_the_workers_own_configuration(
    aws: dict[str, str],
    transformed: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib import bootstrap
    from functions import export_worker

    org, who = f"pii-{uuid.uuid4().hex[:8]}", "subject"
    api = bootstrap.build(_deployed_settings("ApiFunction", aws, monkeypatch))
    try:
        principal = Principal(who, org, frozenset({"writer"}))
        doc = api.documents.create(principal, {"title": "t", "metadata": {"email": EMAIL}})
        job = api.personal_data.start_export(principal)
    finally:
        api.close()
    monkeypatch.undo()

    settings = _deployed_settings("ExportWorkerFunction", aws, monkeypatch)
    assert settings.pii_fields == ("email", "phone"), "the worker knows the fields"
    worker = bootstrap.build(settings)
    calls: list[tuple[str, dict[str, Any]]] = []
    worker.pii.cipher.keyring.kms.meta.events.register(  # type: ignore[union-attr]
        "before-parameter-build.kms.*",
        lambda params, model, **_: calls.append((model.name, params)),
    )
    bootstrap.set_container(worker)
    try:
        result = export_worker.handler({}, _Context())
    finally:
        bootstrap.set_container(None)
        worker.close()
    assert result == {"done": 1, "failed": 0}

    s3 = boto3.client("s3", endpoint_url=aws["endpoint"], region_name="us-east-1")
    key = f"exports/{org}/{job.id}.json"
    raw = s3.get_object(Bucket=aws["bucket"], Key=key)["Body"].read().decode()
    (exported,) = [d for d in json.loads(raw)["documents"] if d["id"] == doc.id]
    assert exported["metadata"] == {"email": EMAIL}
    assert '"$enc"' not in raw, "no sealed envelope in the archive"

    # every KMS call the worker made is one its role allows (SAM's output)
    statements, _ = _role_statements(transformed, "ExportWorkerFunction")
    assert calls and {name for name, _ in calls} == {"Decrypt"}
    for name, params in calls:
        context = tuple(
            (f"kms:EncryptionContext:{k}", v)
            for k, v in params.get("EncryptionContext", {}).items()
        )
        call = Call("kms", (f"kms:{name}",), "ContentKey.Arn", condition=context)
        assert any(_grants(s, call, f"kms:{name}") for s in statements), (name, context)
    put = Call("s3", ("s3:PutObject",), "${ExportsBucket.Arn}/" + key.split("/", 1)[0] + "/*")
    assert any(_grants(s, put, "s3:PutObject") for s in statements)
