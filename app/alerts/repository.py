"""Organisation-scoped lookups of the alert domain's rows."""

from app.alerts.models import Alert, AlertRule, Webhook, WebhookDelivery
from app.core.repository import OrgScopedRepository

RULES = OrgScopedRepository(AlertRule, "alert rule")
ALERTS = OrgScopedRepository(Alert, "alert")
WEBHOOKS = OrgScopedRepository(Webhook, "webhook")
DELIVERIES = OrgScopedRepository(WebhookDelivery, "webhook delivery")
