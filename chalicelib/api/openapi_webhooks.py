"""The OpenAPI component schemas of the webhook routes (docs/webhooks.md);
``openapi.py`` adds them to the served document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.domain.webhooks import EventType


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048,
        pattern="^https://",
        description="https only; a name resolving to public addresses only (docs/webhooks.md)",
    )
    events: list[EventType] = Field(min_length=1, max_length=7)
    tags: list[str] = Field(
        default=[], max_length=50, description="only documents with one of these tags"
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(title="Webhook")

    id: str
    url: str
    events: list[EventType]
    tags: list[str]
    status: Literal["active", "disabled"]
    created_at: str | None
    disabled_at: str | None
    disabled_reason: str | None
    previous_secret_until: str | None = Field(
        description="while set, deliveries are signed with the previous secret too"
    )


class WebhookCreated(WebhookOut):
    model_config = ConfigDict(title="WebhookCreated")

    secret: str = Field(pattern="^whsec_", description="shown in this answer only; store it now")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_s: int = Field(default=86400, ge=0, le=604800)


class AttemptOut(BaseModel):
    model_config = ConfigDict(title="DeliveryAttempt")

    n: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(title="Delivery")

    id: str
    endpoint_id: str
    type: EventType
    document: str
    version: int
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    created_at: str
    next_attempt_at: str | None
    finished_at: str | None
    last_error: str | None
    history: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


MODELS: list[type[BaseModel]] = [
    WebhookIn, WebhookCreated, WebhookList, RotateIn, DeliveryOut, DeliveryList,
]  # fmt: skip
