"""Request and response bodies of alert rules, alerts and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.alerts.models import Alert, AlertRule, Webhook, WebhookDelivery
from app.alerts.rules import AlertCheck
from app.core.fields import ResourceRef, SafeName

RULE_EXAMPLE: dict[str, Any] = {
    "name": "FPR band across skin type",
    "model_ref": "production",
    "rule": {"check": "group_band", "attribute": "skin_type", "metric": "fpr", "max_spread": 0.1, "min_n": 20},
    "window_days": 30,
    "min_n": 100,
}


class AlertRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [RULE_EXAMPLE]})

    name: SafeName
    model_ref: ResourceRef = Field(description="a model version id or an alias (followed as it moves)")
    rule: AlertCheck = Field(description="a policy check (limit, group_band, min_group_count) or a drift check")
    window_days: int | None = Field(default=None, ge=1, le=3660, description="the live window: the last N days")
    last_outcomes: int | None = Field(default=None, ge=1, le=10_000_000, description="or the last K outcomes")
    min_n: int = Field(
        default=50, ge=1, le=10_000_000, description="outcomes (drift: predictions of a group) below which it waits"
    )
    min_interval_seconds: float = Field(default=60.0, ge=1, le=86_400, description="evaluated at most this often")

    @model_validator(mode="after")
    def _one_window(self) -> AlertRuleIn:
        if self.window_days is not None and self.last_outcomes is not None:
            raise ValueError("give window_days or last_outcomes, not both")
        return self


class AlertRuleOut(BaseModel):
    id: str
    created_at: datetime
    name: str
    model_ref: str
    rule: dict[str, object]
    window_days: int | None
    last_outcomes: int | None
    min_n: int
    min_interval_seconds: float
    last_evaluated_at: datetime | None
    last_outcome: str | None = Field(description="pass, fail, insufficient, or waiting (below min_n)")

    @classmethod
    def of(cls, row: AlertRule) -> AlertRuleOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class AlertRuleList(BaseModel):
    items: list[AlertRuleOut]
    next_cursor: str | None


class AlertOut(BaseModel):
    id: str
    created_at: datetime = Field(description="when the breach was found")
    rule_id: str
    model_version_id: str
    status: str = Field(description="firing, or resolved once the rule holds again")
    value: float | None
    message: str
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: Alert) -> AlertOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class AlertList(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"url": "https://alerts.example.org/fairaudit"}]}
    )

    url: str = Field(min_length=1, max_length=2048, description="http(s), no credentials in the URL")


class WebhookOut(BaseModel):
    id: str
    created_at: datetime
    url: str
    enabled: bool
    consecutive_failures: int
    disabled_reason: str | None

    @classmethod
    def of(cls, row: Webhook) -> WebhookOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class WebhookCreated(WebhookOut):
    secret: str = Field(description="signs every delivery (HMAC-SHA256); shown this once, store it now")


class WebhookList(BaseModel):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: str
    created_at: datetime
    event: str
    status: str = Field(description="pending (next try at next_attempt_at), delivered or failed")
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    last_response: str | None = Field(description="the start of the receiver's last answer")
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
