"""The webhook settings (docs/webhooks.md, docs/configuration.md): ``DOCS_WEBHOOKS_*``.

Declared here and mixed into ``chalicelib.config.Settings`` (one flat
environment, as everywhere); the deliverer and the API read the frozen
``settings.webhooks`` group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings


@dataclass(frozen=True)
class WebhookSettings:
    """Retries, disabling, rotation and HTTP limits of the deliverer."""

    insecure_local: bool = False  # http and loopback targets (never honoured in AWS)
    batch_size: int = 200  # outbox rows per fan-in, deliveries per drain step
    retry_base_s: float = 10.0
    retry_cap_s: float = 3600.0
    retry_window_s: float = 86_400.0  # then the delivery is a dead letter
    disable_after_s: float = 86_400.0  # an endpoint failing this long (and ...)
    disable_after_failures: int = 20  # ... this many attempts in a row) is disabled
    rotation_overlap_s: int = 86_400  # the previous secret signs too, this long by default
    max_endpoints: int = 20  # per org
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    lease_s: float = 60.0  # a delivery being sent is not due again before this
    parallel_sends: int = 4  # deliveries in flight at once (each the head of its document)


class WebhookEnv(BaseSettings):
    """The ``DOCS_WEBHOOKS_*`` variables (prefix from ``Settings``)."""

    # http:// and loopback targets, for the local stack and tests; ignored in AWS
    # (when AWS_LAMBDA_FUNCTION_NAME is set): https and public addresses only there
    webhooks_insecure_local: bool = False
    webhooks_batch_size: int = Field(default=200, ge=1, le=1000)
    webhooks_retry_base_s: float = Field(default=10.0, ge=0)  # backoff: base * 2^n, jitter
    webhooks_retry_cap_s: float = Field(default=3600.0, ge=0)
    webhooks_retry_window_s: float = Field(default=86_400.0, ge=0)  # then a dead letter
    webhooks_disable_after_s: float = Field(default=86_400.0, ge=0)  # failing this long ...
    webhooks_disable_after_failures: int = Field(default=20, ge=1)  # ... and this many in a row
    webhooks_rotation_overlap_s: int = Field(default=86_400, ge=0, le=7 * 86_400)
    webhooks_max_endpoints: int = Field(default=20, ge=1)  # per org
    webhooks_connect_timeout_s: float = Field(default=3.0, gt=0)
    webhooks_read_timeout_s: float = Field(default=10.0, gt=0)
    # the key that seals endpoint secrets at rest; unset: derived from the page token
    # secret (a Secrets Manager secret in AWS)
    webhooks_secret_key: str | None = None

    @property
    def webhooks(self) -> WebhookSettings:
        names = (
            "batch_size", "retry_base_s", "retry_cap_s", "retry_window_s", "disable_after_s",
            "disable_after_failures", "rotation_overlap_s", "max_endpoints",
            "connect_timeout_s", "read_timeout_s",
        )  # fmt: skip
        in_aws = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        return WebhookSettings(
            insecure_local=self.webhooks_insecure_local and not in_aws,
            **{name: getattr(self, f"webhooks_{name}") for name in names},
        )
