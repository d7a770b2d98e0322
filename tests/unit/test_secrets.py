"""The page-token secret from Secrets Manager (moto), and the TLS settings of the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import secrets
from chalicelib.config import DEFAULT_SSLROOTCERT, Settings


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    secrets.clear_cache()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    secrets.clear_cache()


def test_settings_read_the_page_token_secret_from_its_arn(
    aws: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = aws.create_secret(Name="docs/page-token", SecretString="s3cret-" + "k" * 40)["ARN"]  # type: ignore[attr-defined]
    monkeypatch.setenv("DOCS_PAGE_TOKEN_SECRET_ARN", arn)
    monkeypatch.delenv("DOCS_PAGE_TOKEN_SECRET", raising=False)
    assert Settings().page_token_secret == "s3cret-" + "k" * 40


def test_the_value_is_cached_until_it_ages_out(aws: object) -> None:
    arn = aws.create_secret(Name="docs/cached", SecretString="first")["ARN"]  # type: ignore[attr-defined]
    assert secrets.get_secret(arn) == "first"
    aws.put_secret_value(SecretId=arn, SecretString="second")  # type: ignore[attr-defined]
    assert secrets.get_secret(arn) == "first"  # one call per max_age, not per request
    secrets.clear_cache()  # what max_age does after 5 minutes (a rotation)
    assert secrets.get_secret(arn) == "second"


def test_without_an_arn_the_local_value_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCS_PAGE_TOKEN_SECRET_ARN", raising=False)
    monkeypatch.setenv("DOCS_PAGE_TOKEN_SECRET", "local-" + "v" * 30)
    assert Settings().page_token_secret == "local-" + "v" * 30


def test_a_missing_secret_fails_loudly_and_names_the_arn(aws: object) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:docs/absent-AbCdEf"
    with pytest.raises(secrets.SecretUnavailable, match="docs/absent"):
        Settings(page_token_secret_arn=arn)


def test_a_binary_secret_is_decoded(aws: object) -> None:
    arn = aws.create_secret(Name="docs/binary", SecretBinary=b"bytes-value")["ARN"]  # type: ignore[attr-defined]
    assert secrets.get_secret(arn) == "bytes-value"


# ------------------------------------------------------------- TLS to the proxy
def test_iam_auth_defaults_to_tls_and_nothing_else() -> None:
    assert Settings(db_iam_auth=True).db_ssl_params() == {"sslmode": "require"}
    assert Settings().db_ssl_params() == {}
    assert Settings(db_sslmode="disable").db_ssl_params() == {"sslmode": "disable"}


def test_verify_full_uses_the_shipped_bundle_by_default() -> None:
    params = Settings(db_iam_auth=True, db_sslmode="verify-full").db_ssl_params()
    assert params == {"sslmode": "verify-full", "sslrootcert": str(DEFAULT_SSLROOTCERT)}
    assert DEFAULT_SSLROOTCERT.is_file()


def test_verify_full_with_a_missing_bundle_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    settings = Settings(db_sslmode="verify-full", db_sslrootcert=str(missing))
    with pytest.raises(RuntimeError, match="DOCS_DB_SSLROOTCERT") as caught:
        settings.db_ssl_params()
    assert str(missing) in str(caught.value)
    assert "docs/deploy.md" in str(caught.value)


def test_the_shipped_bundle_trusts_rds_proxy_and_rds() -> None:
    """RDS Proxy presents an ACM certificate (Amazon Trust Services roots); RDS itself
    one of the RDS CAs. Every certificate in the bundle is current."""
    from datetime import UTC, datetime

    from scripts.rds_ca_bundle import _certs, _name

    certs = [cert for cert, _ in _certs(DEFAULT_SSLROOTCERT.read_text())]
    names = {_name(c) for c in certs}
    assert {"Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2"} <= names  # fmt: skip
    assert "Amazon RDS us-east-1 Root CA RSA2048 G1" in names
    now = datetime.now(UTC)
    assert all(c.not_valid_after_utc > now for c in certs)


@pytest.mark.parametrize(
    ("secret", "password"),
    [('{"password": "p@ss:w/rd", "username": "docs-app"}', "p@ss:w/rd"), ("plain-pw", "plain-pw")],
)
def test_the_cache_password_is_read_by_arn_into_the_redis_url(
    aws: object, monkeypatch: pytest.MonkeyPatch, secret: str, password: str
) -> None:
    arn = aws.create_secret(Name="docs/cache-user", SecretString=secret)["ARN"]  # type: ignore[attr-defined]
    monkeypatch.setenv("REDIS_URL", "rediss://docs-app@cache.example:6379/0")
    monkeypatch.setenv("DOCS_REDIS_AUTH_SECRET_ARN", arn)
    url = Settings().redis_url
    import redis

    kwargs = redis.connection.parse_url(url)
    assert (kwargs["username"], kwargs["password"]) == ("docs-app", password)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6379, 0)
    assert url.startswith("rediss://")
