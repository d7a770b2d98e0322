"""Secrets Manager values, read through Powertools Parameters (cached per process).

Only the ARN travels in a function's environment; the value is fetched at start-up
by the functions whose role may read it (template.yaml: ``GetSecretValue`` on that
secret only).  The Parameters utility (and boto3) is imported lazily: local runs
and the functions that hold no secret never load it.
"""

from __future__ import annotations

DEFAULT_MAX_AGE_S = 300


class SecretUnavailable(RuntimeError):
    """The secret could not be read, or holds no string."""


def get_secret(arn: str, *, max_age_s: int = DEFAULT_MAX_AGE_S) -> str:
    """The secret's current string value (``AWSCURRENT``), cached ``max_age_s`` seconds."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, max_age=max_age_s)
    except parameters.exceptions.GetParameterError as exc:
        # the ARN (not the value) is safe to name; the cause says which call failed
        raise SecretUnavailable(f"cannot read the secret {arn}: {exc}") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value:
        raise SecretUnavailable(f"the secret {arn} holds no string value")
    return value


def clear_cache() -> None:
    """Forget cached values (tests; a rotated secret is otherwise re-read after max_age)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
