"""template.yaml, the GDPR parts: the hourly purge and personal-data encryption."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_template import (
    RESERVED_ONE,
    _actions,
    _env,
    _function,
    _settings_of,
    _statements,
    _template,
)


def test_the_purge_runs_hourly_one_at_a_time_with_what_it_deletes() -> None:
    template = _template()
    fn = _function(template, "PurgeFunction")
    assert fn["Handler"] == "functions.purge.handler"
    assert fn["ReservedConcurrentExecutions"] == RESERVED_ONE
    schedules = [e["Properties"]["Schedule"] for e in fn["Events"].values()]
    assert schedules == ["rate(1 hour)"]
    statements = _statements(template, "PurgeFunction")
    deletes = [s for s in statements if "s3:DeleteObjectVersion" in _actions(s)]
    assert [s["Resource"] for s in deletes] == [{"Sub": "${ContentBucket.Arn}/content/*"}]
    listing = [s for s in statements if "s3:ListBucketVersions" in _actions(s)]
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": "content/*"}}
    # no KMS, no secret: the purge never reads a personal-data value
    assert not any(
        a.startswith(("kms:", "secretsmanager:")) for s in statements for a in _actions(s)
    )
    # the API's restore and the purge share one window
    window = template["Globals"]["Function"]["Environment"]["Variables"]
    assert window["DOCS_DELETE_RETENTION_DAYS"] == "30"
    for name in ("ApiFunction", "PurgeFunction"):  # neither overrides it
        own = _function(template, name)["Environment"]["Variables"]
        assert "DOCS_DELETE_RETENTION_DAYS" not in own, name


def test_personal_data_keys_are_scoped_to_the_api_and_their_purpose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    template = _template()
    policy: dict[str, Any] = template["Resources"]["ApiPersonalDataPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "ApiFunctionRole"}]
    kms, secret = policy["PolicyDocument"]["Statement"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == {"GetAtt": "ContentKey.Arn"}
    assert kms["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:purpose": "docs-pii-data-key"}
    }
    assert secret["Resource"] == {"Ref": "PiiBlindIndexSecret"}
    env = _env(template, "ApiFunction")
    assert env["DOCS_PII_KMS_KEY_ID"] == {"GetAtt": "ContentKey.Arn"}
    assert env["DOCS_PII_BLIND_KEY_ARN"] == {"Ref": "PiiBlindIndexSecret"}
    assert "DOCS_PII_LOCAL_KEYS" not in env and "DOCS_PII_BLIND_KEY" not in env
    settings = _settings_of(template, "ApiFunction", monkeypatch)
    assert settings.pii_kms_key_id and settings.pii_local_keys is None
    # the encryption context the policy names is the one the adapter sends
    from chalicelib.adapters import pii

    assert pii._KMS_CONTEXT == {"purpose": "docs-pii-data-key"}
